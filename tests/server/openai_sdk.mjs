// The official OpenAI SDK for Node (tests/server/node: `openai`, pinned) against emoe_server:
// completions and chat completions, streamed and not, greedy (temperature 0). The text each
// answer carries must equal the engine's own greedy output for the same prompt (build/tools/emoe
// run on the same model: its stdout is given here), the streamed text the whole answer's text,
// and finish_reason and usage must agree with the engine's; with a stop string taken from that
// output, the answer ends just before it (finish_reason "stop"). An unknown model must surface as the
// SDK's NotFoundError with status 404, and an impossible request (n: 2) as BadRequestError.
//
//   node openai_sdk.mjs URL MODEL MAX_TOKENS PROMPTS EMOE_OUT EMOE_CHAT_OUT
//
// PROMPTS is the '|'-separated list given to emoe --prompt; EMOE_OUT and EMOE_CHAT_OUT are the
// stdout of `emoe --prompt=PROMPTS --max_new_tokens=MAX_TOKENS` without and with --chat.
// Exits 0 when every check passed, 1 after printing each failed one.
import fs from "node:fs";
import { createRequire } from "node:module";

// The SDK from tests/server/node/node_modules (this file is beside that folder, not in it).
const require = createRequire(new URL("./node/package.json", import.meta.url));
const { OpenAI } = require("openai");
const sdkVersion = require("openai/version").VERSION;

const [url, model, maxTokensArg, promptsArg, emoeOut, emoeChatOut] = process.argv.slice(2);
if (!emoeChatOut) {
  console.error("usage: node openai_sdk.mjs URL MODEL MAX_TOKENS PROMPTS EMOE_OUT EMOE_CHAT_OUT");
  process.exit(2);
}
const maxTokens = Number(maxTokensArg);
const prompts = promptsArg.split("|");

let failures = 0;
function check(ok, what, detail = "") {
  if (ok) return;
  failures++;
  console.log(`FAIL: ${what}${detail ? "\n  " + detail : ""}`);
}
const show = (s) => JSON.stringify(s);

// emoe's answer for prompt i in its stdout: "[i] <prompt as the model sees it> -> <text>\n",
// then "[i] tokens: ids...\n[i] ttft ... (<finish_reason>)\n". The prompt part holds the user's
// text (alone, or inside the chat template), and no prompt here contains " -> ".
function engineAnswers(path, label) {
  const out = fs.readFileSync(path, "utf8");
  return prompts.map((prompt, i) => {
    const start = out.indexOf(`[${i}] `);
    const tokensAt = out.indexOf(`\n[${i}] tokens:`, start);
    const userAt = out.indexOf(prompt, start);
    const sep = out.indexOf(" -> ", userAt + prompt.length);
    if (start < 0 || tokensAt < 0 || userAt < 0 || sep < 0 || sep > tokensAt) {
      throw new Error(`${label} ${path}: no answer for prompt ${i} (${show(prompt)})`);
    }
    const lineEnd = out.indexOf("\n", tokensAt + 1);
    const ids = out.slice(tokensAt + `\n[${i}] tokens:`.length, lineEnd).trim().split(/\s+/);
    const stats = out.slice(lineEnd + 1, out.indexOf("\n", lineEnd + 1));
    const finish = /\((\w+)\)$/.exec(stats);
    if (!finish) throw new Error(`${label} ${path}: no finish reason for prompt ${i}: ${stats}`);
    return { text: out.slice(sep + 4, tokensAt), tokens: ids.length, finish: finish[1] };
  });
}

const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "dummy", maxRetries: 0, timeout: 300e3 });

async function completions(ref) {
  for (const [i, prompt] of prompts.entries()) {
    const want = ref[i];
    const what = `completion ${i} (${show(prompt)})`;
    const r = await client.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0 });
    check(r.object === "text_completion", `${what}: object`, show(r.object));
    check(r.model === model, `${what}: model`, show(r.model));
    check(r.choices.length === 1, `${what}: one choice`, r.choices.length);
    const c = r.choices[0];
    check(c.text === want.text, `${what}: text is the engine's greedy output`,
      `got  ${show(c.text)}\n  want ${show(want.text)}`);
    check(c.finish_reason === want.finish, `${what}: finish_reason`, `${c.finish_reason} vs ${want.finish}`);
    check(r.usage.completion_tokens === want.tokens, `${what}: usage.completion_tokens`,
      `${r.usage.completion_tokens} vs ${want.tokens}`);
    check(r.usage.prompt_tokens > 0 &&
      r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, `${what}: usage`, show(r.usage));

    const stream = await client.completions.create({
      model, prompt, max_tokens: maxTokens, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "", finish = null, usage = null, chunks = 0, id = null;
    for await (const chunk of stream) {
      chunks++;
      check(chunk.object === "text_completion", `${what} stream: chunk object`, show(chunk.object));
      id ??= chunk.id;
      check(chunk.id === id, `${what} stream: every chunk has the stream's id`, `${chunk.id} vs ${id}`);
      if (chunk.choices.length > 0) {
        text += chunk.choices[0].text;
        if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    check(text === c.text, `${what} stream: text == the whole answer's`, `got  ${show(text)}\n  want ${show(c.text)}`);
    check(finish === want.finish, `${what} stream: finish_reason`, `${finish} vs ${want.finish}`);
    check(usage !== null && usage.completion_tokens === want.tokens &&
      usage.prompt_tokens === r.usage.prompt_tokens, `${what} stream: usage`, show(usage));
    check(chunks >= 2, `${what} stream: chunks`, chunks);
  }
}

// A stop string from the middle of the engine's answer (three code points, none of them U+FFFD
// so that it is real text): the answer must end just before its first occurrence, with
// finish_reason "stop", streamed or not (the string may span tokens: it is caught across them).
let stopChecks = 0;
async function stopStrings(ref) {
  for (const [i, prompt] of prompts.entries()) {
    const cps = Array.from(ref[i].text);
    let at = Math.floor(cps.length / 2);
    while (at + 3 <= cps.length && cps.slice(at, at + 3).some((c) => c === "\ufffd" || /\s/.test(c))) at++;
    if (at + 3 > cps.length) continue;
    const stop = cps.slice(at, at + 3).join("");
    const want = ref[i].text.slice(0, ref[i].text.indexOf(stop));
    const what = `completion ${i} with stop ${show(stop)}`;
    stopChecks++;
    const r = await client.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0, stop: [stop] });
    check(r.choices[0].text === want, `${what}: text ends before the stop string`,
      `got  ${show(r.choices[0].text)}\n  want ${show(want)}`);
    check(r.choices[0].finish_reason === "stop", `${what}: finish_reason`, r.choices[0].finish_reason);
    check(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= ref[i].tokens,
      `${what}: usage.completion_tokens`, r.usage.completion_tokens);
    const stream = await client.completions.create({
      model, prompt, max_tokens: maxTokens, temperature: 0, stop: [stop], stream: true,
    });
    let text = "", finish = null;
    for await (const chunk of stream) {
      if (chunk.choices.length === 0) continue;
      text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    check(text === want && finish === "stop", `${what} stream`, `${show(text)} ${finish}`);
  }
}

async function chat(ref) {
  for (const [i, prompt] of prompts.entries()) {
    const want = ref[i];
    const what = `chat ${i} (${show(prompt)})`;
    const messages = [{ role: "user", content: prompt }];
    const r = await client.chat.completions.create({ model, messages, max_tokens: maxTokens, temperature: 0 });
    check(r.object === "chat.completion", `${what}: object`, show(r.object));
    const m = r.choices[0].message;
    check(m.role === "assistant", `${what}: role`, show(m.role));
    check(m.content === want.text, `${what}: content is the engine's greedy output`,
      `got  ${show(m.content)}\n  want ${show(want.text)}`);
    check(r.choices[0].finish_reason === want.finish, `${what}: finish_reason`,
      `${r.choices[0].finish_reason} vs ${want.finish}`);
    check(r.usage.completion_tokens === want.tokens, `${what}: usage.completion_tokens`,
      `${r.usage.completion_tokens} vs ${want.tokens}`);

    const stream = await client.chat.completions.create({
      model, messages, max_tokens: maxTokens, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "", finish = null, usage = null, first = true;
    for await (const chunk of stream) {
      check(chunk.object === "chat.completion.chunk", `${what} stream: chunk object`, show(chunk.object));
      if (chunk.choices.length > 0) {
        const d = chunk.choices[0].delta;
        if (first) check(d.role === "assistant", `${what} stream: the first delta has the role`, show(d));
        first = false;
        if (d.content) text += d.content;
        if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    check(text === m.content, `${what} stream: text == the whole answer's`, `got  ${show(text)}\n  want ${show(m.content)}`);
    check(finish === want.finish, `${what} stream: finish_reason`, `${finish} vs ${want.finish}`);
    check(usage !== null && usage.completion_tokens === want.tokens &&
      usage.prompt_tokens === r.usage.prompt_tokens, `${what} stream: usage`, show(usage));
  }
}

async function errors() {
  try {
    await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 2 });
    check(false, "unknown model: no error");
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.status === 404, "unknown model: NotFoundError 404",
      `${e.constructor.name} ${e.status} ${e.message}`);
  }
  try {
    await client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], n: 2 });
    check(false, "n: 2: no error");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400 && /\bn\b/.test(e.message),
      "n: 2: BadRequestError 400 naming n", `${e.constructor.name} ${e.status} ${e.message}`);
  }
}

const ref = engineAnswers(emoeOut, "emoe");
const refChat = engineAnswers(emoeChatOut, "emoe --chat");
const models = await client.models.list();
check(models.data.some((x) => x.id === model), "models.list names the model", show(models.data.map((x) => x.id)));
await completions(ref);
await stopStrings(ref);
await chat(refChat);
await errors();
const n = prompts.length;
check(stopChecks > 0, "stop strings: no engine answer had three code points to stop at");
console.log(`openai_sdk: openai@${sdkVersion} on node ${process.version}: ${n} completions ` +
  `(${stopChecks} with a stop string) and ${n} chats, streamed and whole, against ${url} (${model}): ${failures === 0 ? "all passed" : failures + " FAILED"}`);
process.exit(failures === 0 ? 0 : 1);
