// llama_peer_bench.mjs: llama.cpp's side of the peer benchmark (scripts/peer_bench.sh), through
// node-llama-cpp's prebuilt CPU binaries (no download, no build): the same prompt token ids as
// the engine, greedy, prefill and decode tok/s, median of --repeats, and the generated ids.
//
//   node bench/peer/llama_peer_bench.mjs --model=FILE.gguf --prompts="1,2,3;4,5,6"
//       [--threads=1] [--batch=1] [--new_tokens=64] [--repeats=3] [--kv=f16|f32] [--json=FILE]
//
// Batch B: B sequences of one context (sequence i gets prompt i % prompts), evaluated together:
// node-llama-cpp puts evaluations queued in the same tick into one llama_decode batch. A run:
// every sequence's prompt (timed: B * prompt tokens / s), which gives the first new token, then
// new_tokens - 1 steps of one token per sequence (timed: B * (new_tokens - 1) / s). Greedy
// (temperature 0). Set UV_THREADPOOL_SIZE=1: node's default pool of 4 threads competes with
// llama.cpp's on a small machine.
import fs from "node:fs";
import process from "node:process";

// node-llama-cpp from bench/peer/node/node_modules (npm ci there; scripts/peer_bench.sh does).
const nodeModules = new URL("./node/node_modules/", import.meta.url);
const { getLlama, LlamaLogLevel } = await import(
  new URL("node-llama-cpp/dist/index.js", nodeModules).href
);

function parseArgs(argv) {
  const a = { threads: 1, batch: 1, new_tokens: 64, repeats: 3, kv: "f16", json: "" };
  for (const arg of argv) {
    const m = /^--([a-z_]+)=(.*)$/.exec(arg);
    if (!m || !(m[1] in a || m[1] === "model" || m[1] === "prompts")) {
      console.error(`llama_peer_bench: unknown argument '${arg}'`);
      process.exit(2);
    }
    a[m[1]] = m[2];
  }
  for (const k of ["threads", "batch", "new_tokens", "repeats"]) a[k] = Number(a[k]);
  if (!a.model || !a.prompts) {
    console.error("llama_peer_bench: --model and --prompts are required");
    process.exit(2);
  }
  a.prompts = a.prompts.split(";").map((p) => p.split(",").map(Number));
  return a;
}

const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const greedy = { generateNext: { token: true, options: { temperature: 0 } } };

// One sequence's prompt evaluation: the next token after its last id.
async function prefill(seq, ids) {
  const input = ids.map((t, i) => (i === ids.length - 1 ? [t, greedy] : t));
  const out = await seq.controlledEvaluate(input);
  return out[ids.length - 1].next.token;
}

async function step(seq, token) {
  const out = await seq.controlledEvaluate([[token, greedy]]);
  return out[0].next.token;
}

// One run on the context's sequences, their KV cleared first (node-llama-cpp hands a disposed
// sequence's id back only later, so the sequences are kept across runs).
async function oneRun(seqs, a) {
  await Promise.all(seqs.map((s) => s.clearHistory()));
  const prompts = seqs.map((_, i) => a.prompts[i % a.prompts.length]);
  const promptTokens = prompts.reduce((n, p) => n + p.length, 0);
  let t0 = performance.now();
  let next = await Promise.all(seqs.map((s, i) => prefill(s, prompts[i])));
  const prefillS = (performance.now() - t0) / 1000;
  const tokens = next.map((t) => [t]);
  t0 = performance.now();
  for (let k = 1; k < a.new_tokens; ++k) {
    next = await Promise.all(seqs.map((s, i) => step(s, next[i])));
    next.forEach((t, i) => tokens[i].push(t));
  }
  const decodeS = (performance.now() - t0) / 1000;
  return {
    prefill_tok_s: promptTokens / prefillS,
    decode_tok_s: (a.batch * (a.new_tokens - 1)) / decodeS,
    tokens,
  };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: a.model, gpuLayers: 0, useMmap: true });
  const longest = Math.max(...a.prompts.map((p) => p.length));
  const kvType = a.kv === "f32" ? "F32" : "F16";
  const context = await model.createContext({
    sequences: a.batch,
    contextSize: Math.max(256, a.batch * (longest + a.new_tokens + 8)),
    batchSize: Math.max(512, a.batch * longest),
    threads: { ideal: a.threads, min: a.threads },
    experimentalKvCacheKeyType: kvType,
    experimentalKvCacheValueType: kvType,
  });
  const seqs = [];
  for (let i = 0; i < a.batch; ++i) seqs.push(context.getSequence());
  const runs = [];
  for (let r = 0; r < a.repeats; ++r) runs.push(await oneRun(seqs, a));
  for (const s of seqs) s.dispose();
  const out = {
    engine: "llama.cpp",
    node_llama_cpp: JSON.parse(
      fs.readFileSync(new URL("node-llama-cpp/package.json", nodeModules)),
    ).version,
    llama_cpp_release: llama.llamaCppRelease?.release ?? null,
    build_type: llama.buildType,
    cpu_variant: cpuVariant(llama),
    threads: a.threads,
    batch: a.batch,
    new_tokens: a.new_tokens,
    kv_cache: kvType,
    flash_attention: context.flashAttention,
    prefill_tok_s: runs.map((r) => r.prefill_tok_s),
    decode_tok_s: runs.map((r) => r.decode_tok_s),
    prefill_median: median(runs.map((r) => r.prefill_tok_s)),
    decode_median: median(runs.map((r) => r.decode_tok_s)),
    tokens: runs[runs.length - 1].tokens,
  };
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  const text = JSON.stringify(out);
  if (a.json) fs.writeFileSync(a.json, text + "\n");
  else console.log(text);
}

// The ggml CPU backend variant the dynamic loader chose (libggml-cpu-<variant>.so), from the
// shared objects mapped into this process.
function cpuVariant() {
  try {
    const maps = fs.readFileSync("/proc/self/maps", "utf8");
    const m = /libggml-cpu-([a-z0-9_]+)\.so/.exec(maps);
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

main().catch((e) => {
  console.error(`llama_peer_bench: ${e?.stack ?? e}`);
  process.exit(1);
});
