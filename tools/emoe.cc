// emoe: the MoE inference engine's command line.
//
//   emoe --model=DIR --prompt="Hello" [--max_new_tokens=32] [--devices=2]      generate
//   emoe --model=DIR --workload=trace --trace=FILE.csv [--time_scale=10] [--json=report.json]
//   emoe --model=DIR --workload=synthetic --num_requests=64 --rate=20
//   emoe --preset=tiny ...           generate the model into a scratch directory first
//   emoe --preset=qwen3-text --prompt="Hello" [--chat]   real text (data/tokenizers/qwen3)
//
// The weights live in an in-process HMM (devices, arenas, io_uring loading, P2P replicas); the
// instance attaches to them (DP attention + EP experts over --devices devices) and a continuous-
// batching scheduler serves the prompts or the workload. Text goes in and out through the model
// directory's tokenizer.json when it has one (prompts encoded with the tokenizer's special
// tokens, outputs decoded without them; a request stops at the tokenizer's EOS unless
// --ignore_eos; --chat puts each prompt in the chat template); otherwise token ids are bytes
// (the byte tokenizer, vocabulary 256). Start-up says which (tools/model_text.h).
//
// This file reads the flags (the device, arena and page flags are tools/hmm_flags.h's); the
// work is in emoe_serving.cc (devices, weights, serving), emoe_workload.cc (requests) and
// emoe_report.cc (output).
//
// Exit codes (tools/flag_checks.h): 0 every request was served; 1 an error ended the run (--json
// still gets a report, with the error); 2 a bad flag (named; nothing started); 3 the run
// completed but requests were rejected (each one is named on stdout and counted in the report).
#include <gflags/gflags.h>

#include <cstdio>
#include <string>

#include "engine/kernels.h"
#include "engine/model.h"
#include "tools/emoe_serving.h"
#include "tools/flag_checks.h"
#include "tools/hmm_flags.h"
#include "tools/preset_tokenizer.h"
#include "vmm/host.h"

DEFINE_string(model, "", "model directory (config.json + safetensors)");
DEFINE_string(preset, "",
              "generate this preset (see gen_model --list_presets) into --model, or "
              "into a scratch directory when --model is empty");
DEFINE_int32(devices, 1,
             "devices of the instance (DP ranks; experts are split over them), in an HMM of its "
             "own on one NUMA node (the same as --devices_per_node)");
DEFINE_int32(block_tokens, 16, "tokens per KV block, 1..4096");
DEFINE_int32(max_tokens_per_step, 512, "token budget of one batch step, 1..1048576");
DEFINE_bool(enable_chunked_prefill, false,
            "prefill a prompt larger than what a step's budget has left over several steps "
            "(prompts may then exceed the budget)");
DEFINE_int32(max_batch, 64, "sequences per step, 1..4096");
DEFINE_string(prompt, "", "prompt text; several (non-empty) prompts separated by '|'");
DEFINE_bool(chat, false,
            "each prompt is a user message put in the model's chat template (its "
            "tokenizer_config.json chat_template; needs a tokenizer.json)");
DEFINE_bool(ignore_eos, false,
            "generate every token asked for: do not stop at the tokenizer's end-of-sequence "
            "token (vLLM's ignore_eos; fixed lengths, as benchmarks want)");
DEFINE_int32(max_new_tokens, 32, "tokens to generate per prompt, 1..1048576");
DEFINE_double(temperature, 0.0, "0: greedy; otherwise sampling temperature, at most 100");
DEFINE_double(top_p, 1.0, "nucleus sampling mass, in (0, 1]");
DEFINE_uint64(seed, 1, "sampling and synthetic-workload seed");
DEFINE_string(workload, "", "'trace' or 'synthetic' to serve a workload instead of prompts");
DEFINE_string(trace, "data/traces/azure_llm_2023_conv.csv",
              "trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens); a relative path is relative "
              "to the current directory: the default is the Azure trace shipped in the "
              "repository, found when emoe runs from the repository root");
DEFINE_double(time_scale, 1.0, "trace arrivals are divided by this (10: ten times faster), > 0");
DEFINE_int32(num_requests, 64, "requests taken from the trace, or made up, 1..1048576");
DEFINE_double(rate, 10.0, "synthetic arrivals per second (Poisson), > 0");
DEFINE_int32(max_prompt_tokens, 256, "prompt lengths are clipped to this, 1..1048576");
DEFINE_int32(max_output_tokens, 64, "output lengths are clipped to this, 1..1048576");
DEFINE_string(json, "",
              "write the workload report as JSON here (also when the run fails: with its "
              "\"error\")");
DEFINE_string(hmmd_socket, "",
              "attach to a running hmmd (weights zero-copy, read-only) instead of loading them; "
              "--model still gives config.json");
DEFINE_int32(threads_per_device, 1,
             "threads per device, 1..64: a device is a team of threads pinned to its CPUs that "
             "split the rows of every product (outputs are identical for every count); more "
             "than 1 needs --compute_share=1");
DEFINE_double(compute_share, 1.0,
              "device compute share in (0, 1] (DESIGN 4.4): each device idles (1/share - 1) "
              "times its compute after each step, like a slower accelerator");

namespace {

using vmm::Status;

int Fail(const Status& s) {
  std::fprintf(stderr, "emoe: %s\n", s.ToString().c_str());
  return emoe::tools::kExitError;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "emoe: %s\n", message.c_str());
  return emoe::tools::kExitUsage;
}

// emoe's own defaults of the HMM flags: arenas sized from the model.
emoe::tools::HmmFlagDefaults EmoeHmmDefaults() {
  emoe::tools::HmmFlagDefaults d;
  d.weights_mb = 0;
  d.experts_mb = 0;
  d.kv_mb = 0;
  return d;
}

// This binary's own flags, each checked under its own name (the HMM flags: HmmOptionsFromFlags).
Status CheckFlags() {
  namespace t = emoe::tools;
  constexpr int kMaxTokens = 1 << 20;
  if (FLAGS_model.empty() && FLAGS_preset.empty()) {
    return Status::InvalidArgument("--model or --preset is required (see --help)");
  }
  if (FLAGS_workload.empty() && FLAGS_prompt.empty()) {
    return Status::InvalidArgument("give --prompt or --workload (see --help)");
  }
  return t::FirstError({
      FLAGS_preset.empty() ? t::Directory("model", FLAGS_model)
                           : t::Named("preset", emoe::engine::PresetConfig(FLAGS_preset).status()),
      t::Named("preset", emoe::tools::CheckPresetTokenizerDir(
                             FLAGS_preset, emoe::tools::DefaultTokenizerDir(FLAGS_preset))),
      t::IntIn("devices", FLAGS_devices, 1, 64),
      t::IntIn("block_tokens", FLAGS_block_tokens, 1, 4096),
      t::IntIn("max_tokens_per_step", FLAGS_max_tokens_per_step, 1, kMaxTokens),
      t::IntIn("max_batch", FLAGS_max_batch, 1, 4096),
      FLAGS_prompt.empty() ? Status::Ok() : t::List("prompt", FLAGS_prompt, '|', nullptr),
      FLAGS_chat && !FLAGS_workload.empty()
          ? Status::InvalidArgument("--chat templates --prompt's prompts, not a --workload's")
          : Status::Ok(),
      t::IntIn("max_new_tokens", FLAGS_max_new_tokens, 1, kMaxTokens),
      t::RealIn("temperature", FLAGS_temperature, 0, false, 100),
      t::RealIn("top_p", FLAGS_top_p, 0, true, 1),
      t::OneOf("workload", FLAGS_workload, {"", "trace", "synthetic"}),
      FLAGS_workload == "trace" ? t::RegularFile("trace", FLAGS_trace) : Status::Ok(),
      t::RealIn("time_scale", FLAGS_time_scale, 0, true),
      t::IntIn("num_requests", FLAGS_num_requests, 1, kMaxTokens),
      t::RealIn("rate", FLAGS_rate, 0, true),
      t::IntIn("max_prompt_tokens", FLAGS_max_prompt_tokens, 1, kMaxTokens),
      t::IntIn("max_output_tokens", FLAGS_max_output_tokens, 1, kMaxTokens),
      t::CreatableFile("json", FLAGS_json),
      t::Socket("hmmd_socket", FLAGS_hmmd_socket),
      t::RealIn("compute_share", FLAGS_compute_share, 0, true, 1),
      t::IntIn("threads_per_device", FLAGS_threads_per_device, 1, 64),
      FLAGS_threads_per_device > 1 && FLAGS_compute_share < 1
          ? Status::InvalidArgument("--threads_per_device > 1 needs --compute_share=1 (the "
                                    "compute share is accounted per thread)")
          : Status::Ok(),
  });
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("MoE inference engine: generate from prompts or serve a workload" +
                          emoe::tools::ExitCodesHelp(/*requests=*/true));
  emoe::tools::SetHmmFlagDefaults(EmoeHmmDefaults());
  if (auto rc = emoe::tools::ParseFlags("emoe", &argc, &argv)) return *rc;
  if (Status s = CheckFlags(); !s.ok()) return Usage(s.message());
  if (auto s = emoe::tools::ForwardFlagAlias("devices", "devices_per_node"); !s.ok()) {
    return Usage(s.message());
  }
  emoe::tools::EmoeOptions o;
  o.model = FLAGS_model;
  o.preset = FLAGS_preset;
  auto hmm = emoe::tools::HmmOptionsFromFlags();
  if (!hmm.ok()) return Usage(hmm.status().message());
  o.hmm = std::move(*hmm);
  if (o.hmm.devices.devices_per_node > 64) {
    return Usage("--devices (--devices_per_node) must be an integer in 1..64, got " +
                 std::to_string(o.hmm.devices.devices_per_node));
  }
  if (o.hmm.devices.nodes.size() > 1)
    return Usage("--nodes: the instance's devices are on one node");
  if (o.hmm.devices.nodes.empty()) o.hmm.devices.nodes = {vmm::NumaNodes()[0].id};
  o.hmmd_socket = FLAGS_hmmd_socket;
  o.block_tokens = FLAGS_block_tokens;
  o.instance.compute_share = FLAGS_compute_share;
  o.instance.threads_per_device = FLAGS_threads_per_device;
  o.scheduler.max_tokens_per_step = FLAGS_max_tokens_per_step;
  o.scheduler.chunked_prefill = FLAGS_enable_chunked_prefill;
  o.scheduler.max_batch = FLAGS_max_batch;
  emoe::tools::WorkloadOptions& w = o.workload;
  w.kind = FLAGS_workload;
  w.prompts = FLAGS_prompt;
  w.chat = FLAGS_chat;
  w.ignore_eos = FLAGS_ignore_eos;
  w.max_new_tokens = FLAGS_max_new_tokens;
  w.temperature = FLAGS_temperature;
  w.top_p = FLAGS_top_p;
  w.seed = FLAGS_seed;
  w.trace = FLAGS_trace;
  w.time_scale = FLAGS_time_scale;
  w.num_requests = FLAGS_num_requests;
  w.rate = FLAGS_rate;
  w.max_prompt_tokens = FLAGS_max_prompt_tokens;
  w.max_output_tokens = FLAGS_max_output_tokens;
  o.json = FLAGS_json;
  std::fprintf(stderr, "emoe: kernels %s, %d thread(s) per device\n",
               emoe::engine::kernels::IsaName(emoe::engine::kernels::ActiveIsa()),
               FLAGS_threads_per_device);
  auto rejected = emoe::tools::RunEmoe(o);
  if (!rejected.ok()) return Fail(rejected.status());
  return *rejected > 0 ? emoe::tools::kExitRequestsFailed : emoe::tools::kExitOk;
}
