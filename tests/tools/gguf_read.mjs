// gguf_read.mjs FILE.gguf NODE_MODULES: the GGUF's header as @huggingface/gguf (an independent reader) parses
// it, as JSON: scalar metadata, array lengths, tensor infos and the data section's offset.
// gguf_export_test runs it (NODE_MODULES: tests/tools/node's, scripts/fetch_test_clients.sh) to check the
// writer against a reader that is not ours.
import path from "node:path";
import { pathToFileURL } from "node:url";

const [file, nodeModules] = process.argv.slice(2);
const { gguf } = await import(
  pathToFileURL(path.join(nodeModules, "@huggingface/gguf/dist/index.mjs")).href
);
const { metadata, tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true });
const scalars = {};
const arrays = {};
for (const [k, v] of Object.entries(metadata)) {
  if (Array.isArray(v)) arrays[k] = v.length;
  else scalars[k] = typeof v === "bigint" ? Number(v) : v;
}
console.log(
  JSON.stringify({
    scalars,
    arrays,
    data_offset: Number(tensorDataOffset),
    tensors: tensorInfos.map((t) => ({
      name: t.name,
      shape: t.shape.map(Number),
      type: t.dtype,
      offset: Number(t.offset),
    })),
  }),
);
