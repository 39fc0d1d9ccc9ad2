// tools/emoe_workload.h: the requests emoe serves (prompts from the command line, a trace, or a
// synthetic Poisson workload) and the byte-level tokenizer (token ids are bytes, vocabulary 256).
//
// Thread safety: pure functions of their arguments (the trace file is read by the caller's
// thread).
#ifndef TOOLS_EMOE_WORKLOAD_H_
#define TOOLS_EMOE_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "vmm/status.h"

namespace emoe::tools {

// Bytes as ids (0..255).
std::vector<int32_t> Encode(const std::string& text);
// Printable ASCII as is, every other id as \xNN.
std::string Decode(const std::vector<int32_t>& ids);

struct WorkloadOptions {
  std::string kind;  // "": the prompts; "trace"; "synthetic"
  // Prompts ('|'-separated), each generating max_new_tokens with these sampling settings; the
  // seed of prompt i is seed + i.
  std::string prompts;
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
};

// The requests of `o`, ids 0.. in order. kInvalidArgument for an unknown kind or a trace that is
// not a regular file (a FIFO, a directory); kNotFound when the trace does not exist; kDataLoss
// naming a malformed trace line.
vmm::StatusOr<std::vector<engine::Request>> MakeRequests(const WorkloadOptions& o);

}  // namespace emoe::tools

#endif  // TOOLS_EMOE_WORKLOAD_H_
