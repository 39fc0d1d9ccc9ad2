// fuzz_write_seeds OUT_DIR: (re)writes the seed corpora of the fuzz targets into
// OUT_DIR/<target>/, from the project's own writers (gen_model's GenerateModel, WriteSafetensors,
// ModelConfig::ToJson, the hmmd codec's ToJson, StepMailbox::Write, a real arena's export
// metadata, the OpenAI requests' ToJson) plus hand-made edge cases (all of them, for the HTTP
// request parser). The committed fuzz/corpus/ is its output:
//   build-asan/fuzz/fuzz_write_seeds fuzz/corpus
// Deterministic: the same sources give the same files.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "engine/model.h"
#include "hbm/safetensors.h"
#include "hbm/wire.h"
#include "instances/mailbox.h"
#include "ipc/codec.h"
#include "server/openai_api.h"
#include "vmm/arena.h"

namespace {

namespace fs = std::filesystem;
namespace ipc = emoe::hbm::ipc;
using emoe::hbm::DType;
using emoe::hbm::TensorToWrite;

fs::path g_out;

void Put(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_out / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void Check(const vmm::Status& s, const char* what) {
  if (!s.ok()) {
    std::cerr << "fuzz_write_seeds: " << what << ": " << s.ToString() << "\n";
    std::exit(1);
  }
}

// A safetensors file's length and header only (8 + N bytes): the fuzzer reads it as the start of
// a larger file.
std::string HeaderOf(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(file[i]);
  return file.substr(0, 8 + n);
}

std::string Framed(const std::string& header) {
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(header.size() >> (8 * i));
  return len + header;
}

void ModelSeeds(const fs::path& scratch) {
  auto tiny = emoe::engine::PresetConfig("tiny");
  Check(tiny.status(), "preset tiny");
  emoe::engine::GeneratorOptions o;
  o.max_shard_bytes = 64 << 10;  // sharded, with an index
  Check(emoe::engine::GenerateModel(*tiny, o, (scratch / "tiny").string()), "generate tiny");
  if (!fs::exists(scratch / "tiny" / "model.safetensors.index.json")) {
    Check(vmm::Status::Internal("the tiny model was not sharded"), "generate tiny");
  }
  Put("safetensors_index_fuzzer", "tiny_index.json",
      Slurp(scratch / "tiny" / "model.safetensors.index.json"));
  for (const auto& e : fs::directory_iterator(scratch / "tiny")) {
    if (e.path().extension() != ".safetensors") continue;
    Put("safetensors_header_fuzzer", "tiny_" + e.path().stem().string() + "_header",
        HeaderOf(Slurp(e.path())));
    break;  // one shard is enough: they differ only in names
  }
  for (const std::string& preset : emoe::engine::PresetNames()) {
    auto c = emoe::engine::PresetConfig(preset);
    Check(c.status(), preset.c_str());
    Put("model_config_fuzzer", preset + ".json", c->ToJson());
  }
  emoe::engine::ModelConfig mixtral = *tiny;
  mixtral.architecture = emoe::engine::Architecture::kMixtral;
  mixtral.head_dim = mixtral.hidden_size / mixtral.num_attention_heads;
  Put("model_config_fuzzer", "tiny_mixtral.json", mixtral.ToJson());
}

void SafetensorsSeeds(const fs::path& scratch) {
  const std::vector<TensorToWrite> tensors = {
      {"a.weight", DType::kF32, {2, 3}, std::string(24, '\1')},
      {"b.bias", DType::kBF16, {4}, std::string(8, '\2')},
      {"c.scalar", DType::kF16, {}, std::string(2, '\3')},
      {"d.empty", DType::kF32, {0, 5}, ""}};
  const fs::path f = scratch / "small.safetensors";
  Check(emoe::hbm::WriteSafetensors(f.string(), tensors, {{"format", "pt"}}, 8), "write small");
  Put("safetensors_header_fuzzer", "small_whole_file", Slurp(f));
  const std::string t = "safetensors_header_fuzzer";
  Put(t, "edge_empty_header", Framed("{}"));
  Put(t, "edge_length_only", std::string("\x02\0\0\0\0\0\0\0", 8));
  Put(t, "edge_length_past_file", Framed("{}").substr(0, 9));
  Put(t, "edge_huge_length", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  Put(t, "edge_overlap",
      Framed(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})") +
          std::string(8, '\0'));
  Put(t, "edge_shape_overflow",
      Framed(R"({"x":{"dtype":"BF16","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"));
  Put(t, "edge_negative_dim",
      Framed(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})") + "abcd");
  Put(t, "edge_offsets_reversed",
      Framed(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})") + std::string(8, 'z'));
  Put(t, "edge_metadata_not_string", Framed(R"({"__metadata__":{"k":1}})"));
  Put(t, "edge_not_object", Framed("[1,2,3]"));
  const std::string i = "safetensors_index_fuzzer";
  Put(i, "edge_escape", R"({"weight_map":{"a":"../x.safetensors","b":"/etc/passwd"}})");
  Put(i, "edge_empty_and_dot", R"({"weight_map":{"a":"","b":".","c":".."}})");
  Put(i, "edge_not_string", R"({"metadata":{},"weight_map":{"a":1}})");
  Put(i, "edge_no_map", R"({"weight_map":[]})");
}

void ConfigEdgeSeeds() {
  const std::string t = "model_config_fuzzer";
  Put(t, "edge_huge_layers",
      R"({"architectures":["Qwen3MoeForCausalLM"],"vocab_size":2,"hidden_size":2,)"
      R"("num_hidden_layers":2147483648,"num_attention_heads":1,"num_experts_per_tok":1,)"
      R"("moe_intermediate_size":2,"num_experts":1})");
  Put(t, "edge_float_overflow",
      R"({"architectures":["MixtralForCausalLM"],"vocab_size":8,"hidden_size":8,)"
      R"("intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,)"
      R"("num_experts_per_tok":1,"num_local_experts":2,"rope_theta":1e999})");
  Put(t, "edge_wrong_types", R"({"architectures":[1],"vocab_size":"8","head_dim":1.5})");
  // Made ParseModelConfig throw (nlohmann type_error from j.value) before #16.
  Put(t, "regress_sparse_step_string",
      R"({"architectures":["Qwen3MoeForCausalLM"],"vocab_size":8,"hidden_size":8,)"
      R"("num_hidden_layers":1,"num_attention_heads":2,"num_experts_per_tok":1,)"
      R"("moe_intermediate_size":4,"num_experts":2,"decoder_sparse_step":"x"})");
}

void CodecSeeds() {
  const std::string t = "hmmd_codec_fuzzer";
  emoe::hbm::PlacementTable placement;
  placement["layer0.w"] = {emoe::hbm::Usage::kExperts, {0, 1}, "layer 0 expert 1"};
  Put(t, "attach.json", ipc::ToJson(ipc::AttachRequest{1, false, true, false}).dump());
  Put(t, "load.json", ipc::ToJson(ipc::LoadRequest{"/m", "p.", placement}).dump());
  Put(t, "copy_group.json",
      ipc::ToJson(ipc::CopyGroupRequest{{"a", "b"}, 0, 1, emoe::hbm::Usage::kExperts, "x."})
          .dump());
  Put(t, "find.json", ipc::ToJson("find", ipc::RecordRequest{"a", 1}).dump());
  Put(t, "release_many.json", ipc::ToJson(ipc::ReleaseManyRequest{{{"a", 0}, {"b", 1}}}).dump());
  Put(t, "release_matching.json", ipc::ToJson(ipc::ReleaseMatchingRequest{"p.", {0, 2}}).dump());
  ipc::ApplyCopiesRequest batch;
  batch.copies = {{{"l0.e3.w1", "l0.e3.w2", "l0.e3.w3"}, 0, 2, emoe::hbm::Usage::kExperts, ""},
                  {{"embed"}, 1, 3, emoe::hbm::Usage::kWeights, "b."}};
  batch.options = {2, 1 << 20};
  Put(t, "apply_copies.json", ipc::ToJson(batch).dump());
  Put(t, "describe.json", ipc::ToJson(ipc::DescribeRequest{{{"a", 0}, {"l0.e3.w1", 2}}}).dump());
  emoe::hbm::CopyBatchReport batch_report;
  batch_report.copies = {{6 << 20, 0, 0.0005}, {4096, 0.0001, 0.0002}};
  batch_report.bytes = (6 << 20) + 4096;
  batch_report.copy_s = 0.0005;
  Put(t, "copy_batch_report.json", ipc::ToJson(batch_report).dump());
  emoe::hbm::HmmSnapshot snapshot;
  snapshot.records = {{"a", 0, emoe::hbm::Usage::kWeights, DType::kF32, {4}, 16, 4096}};
  snapshot.stats = {emoe::hbm::DeviceStats{}};
  Put(t, "snapshot.json", ipc::ToJson(snapshot).dump());
  Put(t, "kv_alloc.json", ipc::ToJson(ipc::KvAllocRequest{0, 1 << 20}).dump());
  Put(t, "kv_resize.json", ipc::ToJson("kv_resize", ipc::KvRequest{3, 4096}).dump());
  emoe::hbm::HmmOptions options;
  options.memory.usage_bytes = {1 << 20, 2 << 20, 3 << 20};
  Put(t, "start.json", ipc::StartMessage(options).dump());
  ipc::DevicesReply devices{{{0, 0, {0, 1}, 1 << 30}, {1, 0, {2}, 1 << 30}}, ""};
  Put(t, "devices_reply.json", ipc::ToJson(devices).dump());
  emoe::hbm::DeviceStats stats;
  Put(t, "stats_reply.json", ipc::ToJson(ipc::StatsReply{{stats}, "report"}).dump());
  emoe::hbm::LoadReport report;
  report.disk_seconds = 0.25;
  Put(t, "load_report.json", ipc::ToJson(report).dump());
  ipc::WireTensor w;
  w.meta = {"t", 1, emoe::hbm::Usage::kWeights, DType::kBF16, {2, 3}, 12, 4096};
  w.arena = 0;
  Put(t, "wire_tensor.json", ipc::ToJson(w).dump());
  Put(t, "error_reply.json", emoe::hbm::ErrorJson(vmm::Status::NotFound("no such tensor")));
  Put(t, "edge_int_range", R"({"op":"kv_alloc","device":4294967296,"bytes":-1})");
  Put(t, "edge_deep", std::string(200, '[') + std::string(200, ']'));
  const std::string w2 = "hmmd_wire_fuzzer";
  const std::string ping = R"({"op":"ping"})";
  Put(w2, "raw_request", ping);
  Put(w2, "framed_in_parts", std::string("1{\"op\":") + '\0' + "0\"ping\"}" + '\0' + ping);
  Put(w2, "edge_framing_lost", std::string("1{\"op\":") + '\0' + "{\"op\":\"ping\"}");
  Put(w2, "edge_empty_datagram", std::string("") + '\0' + ping);
}

void MailboxSeeds() {
  const std::string t = "step_mailbox_fuzzer";
  const int64_t vocab = 4;
  const std::vector<int32_t> blocks0 = {0, 1}, tokens0 = {7}, blocks1 = {2}, tokens1 = {5, 6, 7};
  const std::vector<emoe::engine::StepMailbox::Sequence> batch = {{0, 16, blocks0, tokens0},
                                                                  {1, 3, blocks1, tokens1}};
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}}) {
    const std::span<const emoe::engine::StepMailbox::Sequence> b(batch.data(), n);
    const auto layout = emoe::engine::StepMailbox::Plan(b, vocab);
    std::string bytes(24 + layout.total_bytes(), '\0');
    std::memcpy(bytes.data(), &layout.request_bytes, 8);
    std::memcpy(bytes.data() + 8, &layout.logits_offset, 8);
    std::memcpy(bytes.data() + 16, &vocab, 8);
    Check(emoe::engine::StepMailbox::Write(b, layout, reinterpret_cast<uint8_t*>(bytes.data()) + 24,
                                           layout.total_bytes()),
          "mailbox write");
    Put(t, "batch_of_" + std::to_string(n), bytes);
  }
  vmm::ArenaOptions ao;
  ao.name = "instance-mailbox";
  ao.capacity_bytes = 1 << 20;
  ao.page_size = vmm::PageSizePolicy::kSmall;
  auto arena = vmm::Arena::Create(ao);
  Check(arena.status(), "arena");
  auto exported = (*arena)->Export();
  Check(exported.status(), "export");
  Put(t, "arena_metadata", std::string(24, '\0') + exported->SerializeMetadata());
}

// Bodies of /v1/completions, /v1/chat/completions and /scale_elastic_ep as clients send them
// (curl, the OpenAI SDK's defaults, vLLM's extras), the parser's own ToJson of each, and bodies
// that must be refused: broken JSON, text that is not UTF-8, wrong types, out-of-range numbers.
void OpenAiSeeds() {
  const std::string t = "openai_request_fuzzer";
  const std::vector<std::pair<std::string, std::string>> completions = {
      {"cmpl_text", R"({"model":"qwen3","prompt":"Hello","max_tokens":16,"temperature":0})"},
      {"cmpl_ids", R"({"model":"m","prompt":[151644,872,198],"stop":["\n\n"],"seed":-1})"},
      {"cmpl_stream",
       R"({"model":"m","prompt":["x"],"stream":true,"stream_options":{"include_usage":true},)"
       R"("n":1,"echo":false,"logprobs":null,"frequency_penalty":0,"presence_penalty":0})"},
      {"cmpl_vllm_extras",
       R"({"model":"m","prompt":[[1,2]],"min_tokens":2,"ignore_eos":true,"stop_token_ids":[2],)"
       R"("skip_special_tokens":false,"include_stop_str_in_output":true,"top_k":-1})"},
  };
  const std::vector<std::pair<std::string, std::string>> chats = {
      {"chat_sdk",
       R"({"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],)"
       R"("model":"qwen3","stream":true,"stream_options":{"include_usage":true},"top_p":0.9})"},
      {"chat_parts",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},)"
       R"({"type":"text","text":"b"}]},{"role":"assistant","content":null},)"
       R"({"role":"tool","content":"t","tool_call_id":"1"}],"max_completion_tokens":8,)"
       R"("chat_template_kwargs":{"enable_thinking":false},"add_generation_prompt":true})"},
  };
  for (const auto& [name, body] : completions) {
    Put(t, name + ".json", body);
    auto r = emoe::server::ParseCompletionRequest(body, false);
    if (auto* ok = std::get_if<emoe::server::CompletionRequest>(&r)) {
      Put(t, name + "_tojson.json", ok->ToJson());
    }
  }
  for (const auto& [name, body] : chats) {
    Put(t, name + ".json", body);
    auto r = emoe::server::ParseCompletionRequest(body, true);
    if (auto* ok = std::get_if<emoe::server::CompletionRequest>(&r)) {
      Put(t, name + "_tojson.json", ok->ToJson());
    }
  }
  Put(t, "scale_vllm.json", R"({"new_data_parallel_size":4})");
  Put(t, "scale_sglang.json", R"({"new_ep_size":2,"method":"cold-restart","drain_timeout":120})");
  Put(t, "edge_not_utf8", "{\"model\":\"m\",\"prompt\":\"ab\xff\xfe\"}");
  Put(t, "edge_surrogate",
      R"({"model":"m","prompt":"\ud800x","messages":[{"role":"user",)"
      R"("content":"\udc00"}]})");
  Put(t, "edge_overlong_utf8", "{\"model\":\"m\",\"prompt\":\"\xc0\xaf\xe0\x80\xaf\"}");
  Put(t, "edge_deep",
      R"({"model":"m","prompt":"x","meta":)" + std::string(100, '[') + std::string(100, ']') + "}");
  Put(t, "edge_numbers",
      R"({"model":"m","prompt":[1e400,-0,2147483648],"max_tokens":9223372036854775808,)"
      R"("temperature":1e-400,"seed":-9223372036854775809,"top_p":-0.0})");
  Put(t, "edge_types",
      R"({"model":1,"prompt":{"a":1},"stream":"true","stop":[null],"messages":"hi",)"
      R"("n":2,"tools":[{}],"new_ep_size":"4"})");
  Put(t, "edge_several_prompts", R"({"model":"m","prompt":["a","b"],"new_ep_size":0})");
  Put(t, "edge_truncated", R"({"model":"m","messages":[{"role":"user","content":"x)");
  Put(t, "edge_trailing", R"({"model":"m","prompt":"x"} {"model":"m"})");
  Put(t, "edge_not_object", R"(["model","prompt"])");
  Put(t, "edge_empty", "");
}

// Requests of every shape for http_request_fuzzer: two control bytes (the reads' sizes, then
// the limits: bits 0-1 the head's, 2-3 the body's; 0x0a: 16 KiB head, 4 KiB body) and then a
// connection's bytes.
void HttpSeeds() {
  const std::string t = "http_request_fuzzer";
  const std::string c("\x07\x0a", 2);
  const std::string chat =
      R"({"model":"qwen3","messages":[{"role":"user","content":"Hi"}],"stream":true,)"
      R"("stream_options":{"include_usage":true},"max_tokens":16})";
  Put(t, "get", c + "GET /v1/models HTTP/1.1\r\nHost: localhost:8000\r\nAccept: */*\r\n\r\n");
  Put(t, "post_chat",
      c +
          "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
          "application/json\r\nContent-Length: " +
          std::to_string(chat.size()) + "\r\n\r\n" + chat);
  Put(t, "chunked",
      c + "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=v\r\n"
          "{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n");
  Put(t, "pipelined",
      c + "GET /health HTTP/1.1\r\n\r\nPOST /scale_elastic_ep HTTP/1.1\r\nContent-Length: 27"
          "\r\n\r\n{\"new_data_parallel_size\":4}GET /metrics?x=1 HTTP/1.1\r\n"
          "Connection: close\r\n\r\n");
  Put(t, "expect_continue",
      c + "POST /v1/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
          "{}");
  Put(t, "http10_keep_alive", c + "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  Put(t, "absolute_form", c + "GET http://example.com:8000/v1/models?a=b HTTP/1.1\r\n\r\n");
  Put(t, "options_star", c + "OPTIONS * HTTP/1.1\r\n\r\n");
  Put(t, "repeated_headers", c + "GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nX-A:3\r\n\r\n");
  Put(t, "leading_crlf", c + "\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  Put(t, "obs_fold", c + "GET / HTTP/1.1\r\nX-Fold: a\r\n b\r\n\r\n");
  Put(t, "edge_h2_preface", c + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  Put(t, "edge_tls", c + std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  Put(t, "edge_head_too_large",
      std::string("\x01\x00", 2) + "GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n");
  Put(t, "edge_body_too_large",
      std::string("\x01\x05", 2) + "POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
  Put(t, "edge_chunked_too_large",
      std::string("\x01\x05", 2) +
          "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
          "40\r\n" +
          std::string(64, 'x') + "\r\n1\r\ny\r\n0\r\n\r\n");
  Put(t, "edge_te_gzip",
      c + "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
  Put(t, "edge_te_and_cl",
      c + "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  Put(t, "edge_two_lengths",
      c + "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
  Put(t, "edge_bad_chunk", c + "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  Put(t, "edge_header_injection", c + "GET / HTTP/1.1\r\nX: a\rb\r\nY: \x01\x7f\r\n\r\n");
  Put(t, "edge_non_utf8",
      c + "POST /\xff\xfe HTTP/1.1\r\nX: \xc3\x28\r\nContent-Length: 2\r\n\r\n\xed\xa0");
  Put(t, "edge_empty_lines",
      std::string("\x01\x00", 2) + std::string(300, '\n') + "GET / HTTP/1.1\r\n\r\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_write_seeds OUT_DIR (e.g. fuzz/corpus)\n";
    return 2;
  }
  g_out = argv[1];
  const fs::path scratch = fs::temp_directory_path() / ("fuzz_seeds." + std::to_string(getpid()));
  fs::create_directories(scratch);
  ModelSeeds(scratch);
  SafetensorsSeeds(scratch);
  ConfigEdgeSeeds();
  CodecSeeds();
  MailboxSeeds();
  OpenAiSeeds();
  HttpSeeds();
  fs::remove_all(scratch);
  std::cout << "fuzz_write_seeds: wrote the seed corpora under " << g_out.string() << "\n";
  return 0;
}
