// bench/tokenizer_ref_bench.mjs: the reference side of bench/tokenizer_bench (run by it, as a
// subprocess, on the same corpus file in the same run). Loads one vocabulary with
// @huggingface/tokenizers, then times, single-threaded and best of --runs:
//   load:   reading + JSON.parse of tokenizer.json and tokenizer_config.json + new Tokenizer
//   encode: every document of the corpus (NUL-separated UTF-8), no special tokens added
//   decode: the ids of every document back to text
// and prints one JSON object on stdout. With --ids_out it writes the ids it produced (per
// document: its count, then its ids; little-endian int32) so the C++ bench can compare them.
//
//   node bench/tokenizer_ref_bench.mjs --node_modules=DIR --tokenizer=DIR --corpus=FILE
//        [--runs=3] [--ids_out=FILE]
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

function Flags(argv) {
  const flags = { runs: "3" };
  for (const arg of argv) {
    const m = /^--([a-z_]+)=(.*)$/s.exec(arg);
    if (!m) throw new Error(`tokenizer_ref_bench: unknown argument '${arg}'`);
    flags[m[1]] = m[2];
  }
  for (const name of ["node_modules", "tokenizer", "corpus"]) {
    if (!flags[name]) throw new Error(`tokenizer_ref_bench: --${name} is required`);
  }
  return flags;
}

// Seconds of the fastest of `runs` calls of fn (fn's last result is kept in `out.value`).
function Best(runs, fn, out) {
  let best = Infinity;
  for (let r = 0; r < runs; ++r) {
    const t0 = process.hrtime.bigint();
    out.value = fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s < best) best = s;
  }
  return best;
}

const flags = Flags(process.argv.slice(2));
const runs = Math.max(1, parseInt(flags.runs, 10));
const pkg = path.join(flags.node_modules, "@huggingface", "tokenizers");
const manifest = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8"));
const { Tokenizer } = await import(pathToFileURL(path.join(pkg, manifest.module ?? manifest.main)));

const jsonPath = path.join(flags.tokenizer, "tokenizer.json");
const configPath = path.join(flags.tokenizer, "tokenizer_config.json");
const loaded = {};
const loadS = Best(runs, () => {
  const json = JSON.parse(fs.readFileSync(jsonPath, "utf8"));
  const config = fs.existsSync(configPath) ? JSON.parse(fs.readFileSync(configPath, "utf8")) : {};
  return new Tokenizer(json, config);
}, loaded);
const tokenizer = loaded.value;

const corpus = fs.readFileSync(flags.corpus, "utf8");
const docs = corpus.split("\0");
const corpusBytes = Buffer.byteLength(corpus, "utf8") - (docs.length - 1);

const encoded = {};
const encodeS = Best(runs, () => docs.map(
  (d) => tokenizer.encode(d, { add_special_tokens: false }).ids), encoded);
const ids = encoded.value;
let tokens = 0;
for (const d of ids) tokens += d.length;

const decoded = {};
const decodeS = Best(runs, () => ids.map((d) => (d.length === 0 ? "" : tokenizer.decode(d))),
                     decoded);
let decodedBytes = 0;
for (const text of decoded.value) decodedBytes += Buffer.byteLength(text, "utf8");

if (flags.ids_out) {
  const out = new Int32Array(docs.length + tokens);
  let k = 0;
  for (const d of ids) {
    out[k++] = d.length;
    for (const id of d) out[k++] = id;
  }
  fs.writeFileSync(flags.ids_out, Buffer.from(out.buffer));
}

console.log(JSON.stringify({
  implementation: `${manifest.name} ${manifest.version}`,
  node: process.version,
  documents: docs.length,
  corpus_bytes: corpusBytes,
  tokens,
  load_s: loadS,
  encode_s: encodeS,
  decode_s: decodeS,
  decoded_bytes: decodedBytes,
}));
