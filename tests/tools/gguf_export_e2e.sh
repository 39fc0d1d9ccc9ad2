#!/usr/bin/env bash
# gguf_export end to end: a tiny model exported in f32 and bf16 (exit 0, the sizes said); each
# bad flag exits 2 naming the flag; a directory that is not a model exits 1 with the reason and
# leaves no file at --out.
# usage: gguf_export_e2e.sh GGUF_EXPORT GEN_MODEL WORKDIR
set -euo pipefail
exe=$1 gen=$2 work=$3
rm -rf "$work" && mkdir -p "$work/empty"
touch "$work/file"
"$gen" --preset=tiny --out="$work/tiny" >/dev/null
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
for dtype in f32 bf16; do
  out=$("$exe" --model="$work/tiny" --out="$work/tiny.$dtype.gguf" --dtype=$dtype) ||
    fail "export $dtype exited $?"
  grep -q "arch qwen3moe, 27 tensors, $dtype" <<<"$out" || fail "export $dtype said: $out"
done
# bad flag # what stderr must name
while IFS='#' read -r args want; do
  rc=0
  # shellcheck disable=SC2086  # the arguments are word-split on purpose
  "$exe" $args >/dev/null 2>"$work/err" || rc=$?
  [ "$rc" = 2 ] || fail "gguf_export $args exited $rc, not 2"
  grep -q -- "$want" "$work/err" || fail "gguf_export $args: stderr does not name $want: $(cat "$work/err")"
done <<EOF2
--out=$work/x.gguf#--model
--model=$work/nope --out=$work/x.gguf#--model
--model=$work/file --out=$work/x.gguf#--model
--model=$work/tiny#--out
--model=$work/tiny --out=$work/empty#--out
--model=$work/tiny --out=$work/nodir/x.gguf#--out
--model=$work/tiny --out=$work/x.gguf --dtype=f16#--dtype
--model=$work/tiny --out=$work/x.gguf --no_such_flag=1#--no_such_flag
EOF2
rc=0
"$exe" --model="$work/empty" --out="$work/x.gguf" >/dev/null 2>"$work/err" || rc=$?
[ "$rc" = 1 ] || fail "a directory without a model exited $rc, not 1"
grep -q "config.json" "$work/err" || fail "no reason given: $(cat "$work/err")"
[ ! -e "$work/x.gguf" ] || fail "a failed export left $work/x.gguf"
[ "$fails" = 0 ] && echo "gguf_export_e2e: all passed"
exit $((fails > 0))
