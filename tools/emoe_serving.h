// tools/emoe_serving.h: what the emoe binary does once its flags are read: (optionally) generate
// a model, put its weights on devices (an in-process HMM loading the checkpoint under
// engine/deployment.h's rule, or a running hmmd's, attached zero-copy and read-only), attach an
// instance, and serve the prompts or the workload with a continuous-batching scheduler.
//
// Thread safety: RunEmoe is the whole program; call it once, from main().
#ifndef TOOLS_EMOE_SERVING_H_
#define TOOLS_EMOE_SERVING_H_

#include <string>

#include "engine/local_instance.h"
#include "engine/scheduler.h"
#include "hbm/hmm.h"
#include "tools/emoe_workload.h"
#include "vmm/status.h"

namespace emoe::tools {

struct EmoeOptions {
  std::string model;   // model directory (config.json + safetensors); may be empty with a preset
  std::string preset;  // generate this preset into `model` (or a scratch directory) first
  // The in-process HMM: devices.devices_per_node is the instance's device count, on the one
  // node of devices.nodes. Arena sizes of 0 are sized from the model (engine/deployment.h):
  // weights and experts from the checkpoint, KV from what the device capacity leaves (at most
  // 1 GiB); a capacity of 0 is then the sum of the arenas (or, with KV sized, the node's memory
  // divided by the devices). With hmmd_socket, only the KV size (0: 64 MiB) and page size apply.
  hbm::HmmOptions hmm;
  std::string hmmd_socket;  // attach to this hmmd's weights instead of loading them
  int block_tokens = 16;    // tokens per KV block
  engine::InstanceOptions instance;
  engine::SchedulerOptions scheduler;  // its clock is RunEmoe's
  WorkloadOptions workload;
  std::string json;  // write the workload report here too ("": stdout only)
};

// Serves `o` to the end and prints the results (emoe_report.h): the text and tokens of the
// prompts on stdout (streamed when there is one), or the workload's JSON report. Text is the
// model directory's tokenizer's, or bytes (tools/model_text.h); a generated preset with a real
// vocabulary gets its tokenizer from the source tree's data/tokenizers/ (preset_tokenizer.h).
// Progress lines (the tokenizer's first) go to stderr. Returns the number of requests rejected
// (each one is a result whose finish_reason says why; the others were served). Any error is
// returned, annotated with what failed, after the workload report went to `json` with it; a
// generated scratch model is removed before returning.
vmm::StatusOr<int> RunEmoe(const EmoeOptions& o);

}  // namespace emoe::tools

#endif  // TOOLS_EMOE_SERVING_H_
