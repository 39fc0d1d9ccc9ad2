// tools/emoe_workload.h: the requests emoe serves: prompts from the command line (text, encoded
// by the model's tokenizer, tools/model_text.h), a trace, or a synthetic Poisson workload
// (random prompt tokens of the model's vocabulary).
//
// Thread safety: pure functions of their arguments (the trace file is read by the caller's
// thread).
#ifndef TOOLS_EMOE_WORKLOAD_H_
#define TOOLS_EMOE_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "tools/model_text.h"
#include "vmm/status.h"

namespace emoe::tools {

struct WorkloadOptions {
  std::string kind;  // "": the prompts; "trace"; "synthetic"
  // Prompts ('|'-separated), each generating max_new_tokens with these sampling settings; the
  // seed of prompt i is seed + i.
  std::string prompts;
  bool chat = false;  // each prompt is a user message in the tokenizer's chat template
  int max_new_tokens = 32;
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 1;  // also the seed of the random prompt tokens and synthetic arrivals
  // Trace: a CSV of TIMESTAMP,ContextTokens,GeneratedTokens (data/traces/README.md); arrivals
  // relative to the first row, divided by time_scale.
  std::string trace;
  double time_scale = 1.0;
  int num_requests = 64;        // taken from the trace, or made up
  double rate = 10.0;           // synthetic arrivals per second (Poisson)
  int max_prompt_tokens = 256;  // prompt lengths are clipped to this
  int max_output_tokens = 64;   // output lengths are clipped to this
  // Every request stops at the tokenizer's EOS (ModelText::StopTokenIds) unless this is set
  // (vLLM's ignore_eos: fixed output lengths, as benchmarks want).
  bool ignore_eos = false;
};

// The requests of `o` for a model whose text is `text`, ids 0.. in order. kInvalidArgument for
// an unknown kind, a trace that is not a regular file (a FIFO, a directory) or chat prompts the
// tokenizer cannot template; kNotFound when the trace does not exist; kDataLoss naming a
// malformed trace line.
vmm::StatusOr<std::vector<engine::Request>> MakeRequests(const WorkloadOptions& o,
                                                         const ModelText& text);

}  // namespace emoe::tools

#endif  // TOOLS_EMOE_WORKLOAD_H_
