#!/usr/bin/env bash
# tokenize end to end on the real vocabularies (scripts/fetch_tokenizers.sh puts them in
# data/tokenizers; absent: exit 77, which CTest reports as skipped):
#  1. lines (English, code with tabs, CJK, Arabic, emoji, special tokens as text, an empty line)
#     round-trip through encode and --decode byte for byte, on Qwen3 and on Mistral;
#  2. --jsonl texts holding newlines, tabs and quotes round-trip as JSON strings;
#  3. --chat renders a message list given over several lines (the config's family for Qwen3,
#     --chat_template=mistral for the Mistral vocabulary, whose config has no template), and
#     --chat --jsonl piped into --jsonl gives the ids of the templated prompt;
#  4. --add_special_tokens adds Mistral's <s>;
#  5. bad input exits 1 naming the line: an id that is not an integer, an id outside the
#     vocabulary, a line that is not a JSON string, a malformed message list, --chat without a
#     template.
# usage: tokenize_e2e.sh TOKENIZE_BINARY DATA_DIR WORKDIR
set -euo pipefail
bin=$1 data=$2 work=$3
for v in qwen3 mistral; do
  if [ ! -f "$data/$v/tokenizer.json" ]; then
    echo "SKIP: $data/$v/tokenizer.json is absent: run scripts/fetch_tokenizers.sh"
    exit 77
  fi
done
rm -rf "$work" && mkdir -p "$work"
qwen=(--tokenizer="$data/qwen3")
mistral=(--tokenizer="$data/mistral/tokenizer.json")
fail() {
  echo "FAIL: $*"
  exit 1
}

# 1. Plain lines.
printf '%s\n' "Hello, world! How are you today?" $'def f(x):\treturn x  *  2   # tabs and  runs' \
  "日本語のテキストと中文文本，还有한국어도。" "مرحبا بالعالم" "emoji 👋🏽 👨‍👩‍👧 🎉" \
  "" "  leading and trailing spaces  " "<|im_start|>user hi<|im_end|>" "𝔘𝔫𝔦𝔠𝔬𝔡𝔢" >"$work/lines.txt"
for v in qwen mistral; do
  if [ "$v" = qwen ]; then flags=("${qwen[@]}"); else flags=("${mistral[@]}"); fi
  "$bin" "${flags[@]}" <"$work/lines.txt" >"$work/$v.ids" || fail "$v: encode exited $?"
  [ "$(wc -l <"$work/$v.ids")" = "$(wc -l <"$work/lines.txt")" ] || fail "$v: not one line of ids per line"
  grep -qvE '^([0-9]+( [0-9]+)*)?$' "$work/$v.ids" && fail "$v: a line of ids is not integers: $(cat "$work/$v.ids")"
  "$bin" "${flags[@]}" --decode <"$work/$v.ids" >"$work/$v.txt" || fail "$v: decode exited $?"
  cmp "$work/lines.txt" "$work/$v.txt" || { diff "$work/lines.txt" "$work/$v.txt"; fail "$v: round trip"; }
done
# The special token as text is one id on Qwen3 (the added token <|im_start|> = 151644).
sed -n 8p "$work/qwen.ids" | grep -q '^151644 ' || fail "qwen: <|im_start|> is not id 151644: $(sed -n 8p "$work/qwen.ids")"

# 2. JSON lines, written as tokenize writes JSON strings (so the round trip is byte for byte).
cat >"$work/texts.jsonl" <<'EOF'
"line one\nline two\n\n\tindented \"quoted\" \\ backslash"
"Ünïcödé ✓ 中文\r\n"
""
EOF
"$bin" "${qwen[@]}" --jsonl <"$work/texts.jsonl" >"$work/jsonl.ids" || fail "jsonl encode exited $?"
[ "$(wc -l <"$work/jsonl.ids")" = 3 ] || fail "jsonl: not 3 lines of ids"
"$bin" "${qwen[@]}" --decode --jsonl <"$work/jsonl.ids" >"$work/jsonl.out"
cmp "$work/texts.jsonl" "$work/jsonl.out" || { diff "$work/texts.jsonl" "$work/jsonl.out"; fail "jsonl round trip"; }

# 3. Chat templates.
cat >"$work/chat.json" <<'EOF'
[
  {"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Hi"}
]
EOF
printf '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n' >"$work/chat.want"
"$bin" "${qwen[@]}" --chat <"$work/chat.json" >"$work/chat.out" || fail "chat exited $?"
cmp "$work/chat.want" "$work/chat.out" || fail "qwen chat: $(cat "$work/chat.out")"
printf '<|im_start|>assistant\n<think>\n\n</think>\n\n' >"$work/nothink.want"
"$bin" "${qwen[@]}" --chat --enable_thinking=false <"$work/chat.json" |
  tail -c "$(wc -c <"$work/nothink.want")" >"$work/nothink.out"
cmp "$work/nothink.want" "$work/nothink.out" || fail "enable_thinking=false: $(cat "$work/nothink.out")"
ids=$("$bin" "${qwen[@]}" --chat --jsonl <"$work/chat.json" | "$bin" "${qwen[@]}" --jsonl)
case "$ids" in 151644\ *\ 151645\ *) ;; *) fail "templated prompt ids: $ids" ;; esac
echo '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]' >"$work/m.json"
"$bin" "${mistral[@]}" --chat --chat_template=mistral <"$work/m.json" >"$work/m.out"
[ "$(cat "$work/m.out")" = "<s>[INST] Hi [/INST]Hello.</s>" ] || fail "mistral chat: $(cat "$work/m.out")"

# 4. Special tokens.
first=$(echo "Hello" | "$bin" "${mistral[@]}" --add_special_tokens | cut -d' ' -f1)
[ "$first" = 1 ] || fail "--add_special_tokens: first id $first, want <s> = 1"

# 5. Bad input: exit 1, the line named.
bad() {  # bad WANT_IN_STDERR ARGS... < input
  local want=$1 rc=0
  shift
  "$bin" "$@" >"$work/bad.out" 2>"$work/bad.err" || rc=$?
  [ "$rc" = 1 ] || fail "$*: exit $rc, want 1"
  grep -qF -- "$want" "$work/bad.err" || fail "$*: stderr does not say '$want': $(cat "$work/bad.err")"
}
printf '1 2 3\n12 x 5\n' | bad "stdin line 2: 'x' is not an integer id" "${qwen[@]}" --decode
printf '1\n\n99999999\n' | bad "stdin line 3: id 99999999 is outside the vocabulary" "${qwen[@]}" --decode
printf '"ok"\n"also ok"\nnot json\n' | bad "stdin line 3" "${qwen[@]}" --jsonl
printf '"ok"\n42\n' | bad "stdin line 2: not a JSON string" "${qwen[@]}" --jsonl
printf '[{"role": "user",\n "content": }]\n' | bad "line 2" "${qwen[@]}" --chat
printf '[{"role": "user", "content": 7}]' | bad 'message 0: "content" must be a string' "${qwen[@]}" --chat
bad "no chat template" "${mistral[@]}" --chat <"$work/m.json"
printf '[{"role": "system", "content": "s"}]' |
  bad "Conversation roles must alternate" "${mistral[@]}" --chat --chat_template=mistral
echo "tokenize e2e: round trips on qwen3 and mistral, jsonl, chat, special tokens, 8 bad inputs refused"
