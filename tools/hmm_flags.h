// tools/hmm_flags.h: the device, arena, page and loader flags of every binary that creates an HMM
// (emoe, elasticmoe, hmmd), defined once, and the hbm::HmmOptions they give.
//
//   --devices_per_node --nodes --pin_cpus --device_capacity_mb      hbm::DeviceOptions
//   --weights_mb --experts_mb --kv_mb --page_size --populate --discard_on_free
//                                                                    hbm::DeviceMemoryOptions
//   --queue_depth --chunk_kb --direct_io --register_buffers --progress_interval_s
//                                                                    hbm::LoaderOptions
//   --copy_threads HmmOptions::copy_threads_per_device
//   --check_weights HmmOptions::check_weights (NaN/Inf scan of loaded weights)
//
// The flags are defined in hmm_flags.cc, the one file without a main() that defines flags: a
// binary gets them by linking it. A binary whose defaults differ from hmmd's (HmmFlagDefaults{})
// calls SetHmmFlagDefaults before gflags::ParseCommandLineFlags, so that --help shows its own
// defaults. What a 0 means where a binary sizes an arena itself is that binary's rule (the flag
// help names it).
//
// Thread safety: call from main() only (gflags' flag registry is process-wide).
#ifndef TOOLS_HMM_FLAGS_H_
#define TOOLS_HMM_FLAGS_H_

#include <cstdint>
#include <string>

#include "hbm/hmm.h"
#include "vmm/status.h"

namespace emoe::tools {

// The flags' defaults, as flag values (MiB, KiB, names). HmmFlagDefaults{} is hmmd's set.
struct HmmFlagDefaults {
  int devices_per_node = 1;
  std::string nodes;  // comma-separated NUMA node ids; empty: every node with memory
  bool pin_cpus = false;
  uint64_t device_capacity_mb = 0;  // MiB; 0: the node's memory / devices (binaries may differ)
  uint64_t weights_mb = 512;        // MiB
  uint64_t experts_mb = 512;        // MiB
  uint64_t kv_mb = 0;               // MiB
  std::string page_size = "auto";   // auto, hugetlb, thp, 4k
  bool populate = false;
  bool discard_on_free = false;
  uint32_t queue_depth = 32;  // io_uring reads in flight
  uint64_t chunk_kb = 1024;   // KiB per read
  bool direct_io = true;
  bool register_buffers = true;
  double progress_interval_s = 1.0;  // seconds between load progress reports
  int copy_threads = 0;              // per device; 0: one per device CPU, at most 8
  bool check_weights = true;         // NaN/Inf scan of loaded weights
};

// Makes `d` the flags' defaults (gflags SET_FLAGS_DEFAULT: --help shows them, and a flag not on
// the command line reads as its new default). REQUIRES: before gflags::ParseCommandLineFlags.
void SetHmmFlagDefaults(const HmmFlagDefaults& d);

// The HMM options the flags give (loader.progress is left empty: the binary's own). On a bad
// value, kInvalidArgument whose message starts with the flag ("--page_size: page size policy
// 'x' is not one of auto, hugetlb, thp, 4k"; "--nodes: '0,a' is not a comma-separated list of
// node ids"; "--copy_threads must be an integer in 0..256, got -1"), checked before anything is
// created; a value given through an alias (ForwardFlagAlias) names the alias.
vmm::StatusOr<hbm::HmmOptions> HmmOptionsFromFlags();

// `alias`, a flag the binary defines itself under an older name, sets the HMM flag `flag`: when
// `alias` is on the command line its value is given to `flag`. kInvalidArgument naming both when
// both are on the command line with different values, or when either flag does not exist.
// REQUIRES: after gflags::ParseCommandLineFlags, before HmmOptionsFromFlags.
vmm::Status ForwardFlagAlias(const std::string& alias, const std::string& flag);

}  // namespace emoe::tools

#endif  // TOOLS_HMM_FLAGS_H_
