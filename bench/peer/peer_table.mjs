// peer_table.mjs DIR: the peer benchmark's table (scripts/peer_bench.sh) from the per-run JSON
// files in DIR (ours_tT_bB.json from build/bench/peer_engine, llama_tT_bB.json and
// agree_f32.json from llama_peer_bench.mjs): one row per (threads, batch) with ours / llama.cpp
// ratios, the greedy-token agreement, and DIR/peer_bench.json with everything.
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const meta = read("meta.json");

// Per sequence: the number of leading tokens equal in both, and whether all are.
function agreement(a, b) {
  let prefix = 0, total = 0, equal = 0, whole = 0;
  a.forEach((seq, i) => {
    let k = 0;
    while (k < seq.length && k < b[i].length && seq[k] === b[i][k]) ++k;
    prefix = i === 0 ? k : Math.min(prefix, k);
    if (k === seq.length && k === b[i].length) ++whole;
    total += seq.length;
    equal += seq.filter((t, j) => t === b[i][j]).length;
  });
  return {
    sequences: a.length,
    sequences_equal: whole,
    min_equal_prefix: prefix,
    equal_tokens: equal,
    tokens: total,
  };
}

const rows = [];
for (const t of meta.threads) {
  for (const b of meta.batches) {
    const ours = read(`ours_t${t}_b${b}.json`), llama = read(`llama_t${t}_b${b}.json`);
    rows.push({
      threads: t,
      batch: b,
      ours: { prefill: ours.prefill_median, decode: ours.decode_median, runs: ours },
      llama: { prefill: llama.prefill_median, decode: llama.decode_median, runs: llama },
      prefill_ratio: ours.prefill_median / llama.prefill_median,
      decode_ratio: ours.decode_median / llama.decode_median,
      bf16_agreement: agreement(ours.tokens, llama.tokens),
    });
  }
}
const agreeRun = read("agree_f32.json");
const oursRef = read(`ours_t${meta.threads[0]}_b${agreeRun.batch}.json`);
const f32 = agreement(oursRef.tokens, agreeRun.tokens);
const llamaInfo = read(`llama_t${meta.threads[0]}_b${meta.batches[0]}.json`);

const f = (x) => x.toFixed(1);
console.log(
  `\npeer benchmark: ${meta.model} (${meta.preset}); ${meta.prompt_tokens} prompt ids, ` +
    `${meta.new_tokens} new tokens (greedy), median of ${meta.repeats}; llama.cpp: ` +
    `node-llama-cpp ${llamaInfo.node_llama_cpp}, llama.cpp ${llamaInfo.llama_cpp_release}, ` +
    `${llamaInfo.build_type} CPU build, ggml-cpu variant ${llamaInfo.cpu_variant}, ` +
    `KV cache ${llamaInfo.kv_cache}, bf16 GGUF\n`,
);
console.log("| threads | batch | ours prefill | llama.cpp prefill | ratio | ours decode | " +
  "llama.cpp decode | ratio | bf16 tokens equal |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const a = r.bf16_agreement;
  console.log(
    `| ${r.threads} | ${r.batch} | ${f(r.ours.prefill)} | ${f(r.llama.prefill)} | ` +
      `${r.prefill_ratio.toFixed(2)}x | ${f(r.ours.decode)} | ${f(r.llama.decode)} | ` +
      `${r.decode_ratio.toFixed(2)}x | ${a.equal_tokens}/${a.tokens} |`,
  );
}
console.log(
  `\nagreement on the f32 GGUF (llama.cpp ${agreeRun.threads} thread(s), batch ` +
    `${agreeRun.batch}, KV ${agreeRun.kv_cache}) with ours: ${f32.equal_tokens}/${f32.tokens} ` +
    `tokens equal; ${f32.sequences_equal} of ${f32.sequences} sequences equal throughout, ` +
    `every one for its first ${f32.min_equal_prefix} of ${meta.new_tokens}`,
);
const out = { ...meta, llama_cpp: llamaInfo, rows, f32_agreement: { ...f32, run: agreeRun } };
fs.writeFileSync(path.join(dir, "peer_bench.json"), JSON.stringify(out, null, 1) + "\n");
console.log(`\nwrote ${path.join(dir, "peer_bench.json")}`);
