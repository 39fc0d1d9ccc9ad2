// golden.mjs: the reference's answers for the oracle corpus (tests/tokenizer/node/corpus.mjs).
//
//   node golden.mjs TOKENIZER_DIR CORPUS.jsonl OUT.jsonl
//
// TOKENIZER_DIR holds tokenizer.json and tokenizer_config.json. For each corpus line
// {"category", "text"} writes one line, in order, with what @huggingface/tokenizers (the pinned
// reference implementation, package-lock.json) gives:
//   {"category", "text",
//    "ids":          encode(text, {add_special_tokens: false}).ids,
//    "ids_special":  encode(text, {add_special_tokens: true}).ids,
//    "decoded":      decode(ids)                 (special tokens kept; "" for no ids),
//    "decoded_skip": decode(ids, {skip_special_tokens: true}),
//    "roundtrip":    decoded === text}
// Prints the count, the round-trip count and the time taken on stderr.
import fs from "fs";
import path from "path";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, corpusPath, outPath] = process.argv.slice(2);
if (!dir || !corpusPath || !outPath) {
  console.error("usage: node golden.mjs TOKENIZER_DIR CORPUS.jsonl OUT.jsonl");
  process.exit(2);
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`golden.mjs: ${file}: ${e.message}`);
    process.exit(1);
  }
}

const start = process.hrtime.bigint();
const tokenizer = new Tokenizer(readJson(path.join(dir, "tokenizer.json")),
                                readJson(path.join(dir, "tokenizer_config.json")));
const loadedNs = process.hrtime.bigint();

// The reference refuses to decode no ids ("token_ids must be a non-empty array"); their text is
// "" (as the Rust implementation and our Decode give).
const decode = (ids, skip) =>
  ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: skip });

const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = [];
let roundtrips = 0, bytes = 0;
for (const [i, line] of lines.entries()) {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch (e) {
    console.error(`golden.mjs: ${corpusPath}:${i + 1}: ${e.message}`);
    process.exit(1);
  }
  const { category, text } = entry;
  const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
  const idsSpecial = tokenizer.encode(text, { add_special_tokens: true }).ids;
  const decoded = decode(ids, false);
  const decodedSkip = decode(ids, true);
  const roundtrip = decoded === text;
  if (roundtrip) roundtrips++;
  bytes += Buffer.byteLength(text, "utf8");
  out.push(JSON.stringify({ category, text, ids, ids_special: idsSpecial, decoded,
                            decoded_skip: decodedSkip, roundtrip }));
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
const end = process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6;
console.error(`golden.mjs: ${dir}: ${lines.length} strings (${bytes} bytes), ${roundtrips} ` +
              `round-trip; load ${ms(start, loadedNs).toFixed(0)} ms, encode+decode ` +
              `${ms(loadedNs, end).toFixed(0)} ms`);
