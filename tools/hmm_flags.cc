// The HMM flags (hmm_flags.h). This file defines flags without having a main(): the flags are
// the same in every binary that creates an HMM, so they are defined once, here, and each binary
// links this file (CONVENTIONS: DEFINE_* only next to main() otherwise).
#include "tools/hmm_flags.h"

#include <gflags/gflags.h>

#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "tools/flag_checks.h"

// The defaults are HmmFlagDefaults{} (hmmd's); keep the two in step.
DEFINE_int32(devices_per_node, 1, "devices per NUMA node (emoe: --devices sets it)");
DEFINE_string(nodes, "",
              "NUMA nodes to use, comma separated (default: every node with memory; emoe and "
              "elasticmoe: the first node)");
DEFINE_bool(pin_cpus, false, "give every device CPUs of its own (refused if too few)");
DEFINE_uint64(device_capacity_mb, 0,
              "memory per device, MiB: bounds what its weights, experts and KV arenas hold "
              "together (0: the node's memory / devices; elasticmoe: the sum of the arenas; emoe: "
              "the sum of the arenas, or the node's memory / devices when --kv_mb is 0)");
DEFINE_uint64(weights_mb, 512, "weights arena per device, MiB (emoe: 0 sizes it from the model)");
DEFINE_uint64(experts_mb, 512,
              "experts arena per device, MiB (emoe: 0 sizes it from the model's expert share)");
DEFINE_uint64(kv_mb, 0,
              "KV arena per device, MiB (emoe: 0 is the device memory left after the weights, at "
              "most 1 GiB, or 64 MiB when attached to hmmd; elasticmoe: each KV store is as "
              "large)");
DEFINE_string(page_size, "auto", "arena pages: auto, hugetlb, thp, 4k");
DEFINE_bool(populate, false,
            "resident device memory, like HBM: fault in at start what each device can hold "
            "(its capacity, over its arenas), and any other arena page when it is allocated, "
            "so that nothing pays first-touch faults; false: arenas fill lazily");
DEFINE_bool(discard_on_free, false, "punch freed arena pages out (memory back to the kernel)");
DEFINE_uint32(queue_depth, 32, "io_uring reads in flight, 1..4096");
DEFINE_uint64(chunk_kb, 1024, "bytes per read, KiB (a multiple of 4, at most 1 GiB)");
DEFINE_bool(direct_io, true, "O_DIRECT reads where possible");
DEFINE_bool(register_buffers, true, "register load destinations with io_uring (READ_FIXED)");
DEFINE_double(progress_interval_s, 1.0, "seconds between load progress reports, 0..3600");
DEFINE_int32(copy_threads, 0,
             "peer-to-peer copy threads per device, 0..256 (0: one per CPU, at most 8)");
DEFINE_bool(check_weights, true,
            "scan loaded weights for NaN/Inf and refuse a load that has any, naming the tensor "
            "(false: load them as they are)");

namespace emoe::tools {
namespace {

using vmm::Status;
using vmm::StatusOr;

void SetDefault(const char* flag, const std::string& value) {
  gflags::SetCommandLineOptionWithMode(flag, value.c_str(), gflags::SET_FLAGS_DEFAULT);
}

std::string Bool(bool b) { return b ? "true" : "false"; }

// "0,2,3" -> {0, 2, 3}; "" -> {}. False on anything else.
bool ParseIntList(const std::string& s, std::vector<int>* out) {
  out->clear();
  if (s.empty()) return true;
  size_t pos = 0;
  for (;;) {
    const size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? comma : comma - pos);
    if (item.empty() || item.size() > 9 ||
        item.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    out->push_back(std::stoi(item));
    if (comma == std::string::npos) return true;
    pos = comma + 1;
  }
}

// --<flag>=<mib> in bytes; kInvalidArgument when the bytes do not fit in 64 bits.
StatusOr<uint64_t> MibFlag(const char* flag, uint64_t mib) {
  if (mib > (std::numeric_limits<uint64_t>::max() >> 20)) {
    return Status::InvalidArgument(std::string("--") + flag + " must be at most " +
                                   std::to_string(std::numeric_limits<uint64_t>::max() >> 20) +
                                   " (MiB in 64-bit bytes), got " + std::to_string(mib));
  }
  return mib << 20;
}

// The HMM flags that a binary's own older names stand for (ForwardFlagAlias): an error names
// the flag the user typed.
std::map<std::string, std::string>& Aliases() {
  static std::map<std::string, std::string> aliases;  // flag -> alias given
  return aliases;
}

const char* Name(const char* flag) {
  auto it = Aliases().find(flag);
  gflags::CommandLineFlagInfo info;
  if (it == Aliases().end() || !gflags::GetCommandLineFlagInfo(it->second.c_str(), &info) ||
      info.is_default) {
    return flag;  // no alias, or one no longer given (flags restored, in tests)
  }
  return it->second.c_str();
}

Status DeviceFlags(hbm::DeviceOptions* d) {
  VMM_RETURN_IF_ERROR(IntIn(Name("devices_per_node"), FLAGS_devices_per_node, 1, 256));
  d->devices_per_node = FLAGS_devices_per_node;
  if (!ParseIntList(FLAGS_nodes, &d->nodes)) {
    return Status::InvalidArgument("--nodes: '" + FLAGS_nodes +
                                   "' is not a comma-separated list of node ids");
  }
  if (Status s = d->Validate(); !s.ok()) {
    return Status::InvalidArgument("--nodes=" + FLAGS_nodes + ": " + s.message());
  }
  d->pin_cpus = FLAGS_pin_cpus;
  VMM_ASSIGN_OR_RETURN(d->capacity_bytes,
                       MibFlag(Name("device_capacity_mb"), FLAGS_device_capacity_mb));
  return Status::Ok();
}

Status MemoryFlags(hbm::DeviceMemoryOptions* m) {
  VMM_ASSIGN_OR_RETURN(m->usage_bytes[static_cast<int>(hbm::Usage::kWeights)],
                       MibFlag("weights_mb", FLAGS_weights_mb));
  VMM_ASSIGN_OR_RETURN(m->usage_bytes[static_cast<int>(hbm::Usage::kExperts)],
                       MibFlag("experts_mb", FLAGS_experts_mb));
  VMM_ASSIGN_OR_RETURN(m->usage_bytes[static_cast<int>(hbm::Usage::kKv)],
                       MibFlag("kv_mb", FLAGS_kv_mb));
  auto policy = vmm::ParsePageSizePolicy(FLAGS_page_size);
  if (!policy.ok()) return Status::InvalidArgument("--page_size: " + policy.status().message());
  m->page_size = *policy;
  m->populate = FLAGS_populate;
  m->discard_on_free = FLAGS_discard_on_free;
  return Status::Ok();
}

Status LoaderFlags(hbm::LoaderOptions* l) {
  VMM_RETURN_IF_ERROR(FirstError({
      IntIn("queue_depth", FLAGS_queue_depth, 1, 4096),
      // Whole pages of 4 KiB, at most 1 GiB per read.
      FLAGS_chunk_kb == 0 || FLAGS_chunk_kb % 4 != 0 || FLAGS_chunk_kb > (1u << 20)
          ? Status::InvalidArgument("--chunk_kb must be a multiple of 4 (KiB) in 4..1048576, got " +
                                    std::to_string(FLAGS_chunk_kb))
          : Status::Ok(),
      RealIn("progress_interval_s", FLAGS_progress_interval_s, 0, false, 3600),
  }));
  l->queue_depth = FLAGS_queue_depth;
  l->chunk_bytes = FLAGS_chunk_kb << 10;
  l->direct_io = FLAGS_direct_io;
  l->register_buffers = FLAGS_register_buffers;
  l->progress_interval_s = FLAGS_progress_interval_s;
  return l->Validate();
}

}  // namespace

void SetHmmFlagDefaults(const HmmFlagDefaults& d) {
  SetDefault("devices_per_node", std::to_string(d.devices_per_node));
  SetDefault("nodes", d.nodes);
  SetDefault("pin_cpus", Bool(d.pin_cpus));
  SetDefault("device_capacity_mb", std::to_string(d.device_capacity_mb));
  SetDefault("weights_mb", std::to_string(d.weights_mb));
  SetDefault("experts_mb", std::to_string(d.experts_mb));
  SetDefault("kv_mb", std::to_string(d.kv_mb));
  SetDefault("page_size", d.page_size);
  SetDefault("populate", Bool(d.populate));
  SetDefault("discard_on_free", Bool(d.discard_on_free));
  SetDefault("queue_depth", std::to_string(d.queue_depth));
  SetDefault("chunk_kb", std::to_string(d.chunk_kb));
  SetDefault("direct_io", Bool(d.direct_io));
  SetDefault("register_buffers", Bool(d.register_buffers));
  char interval[32];
  std::snprintf(interval, sizeof(interval), "%.17g", d.progress_interval_s);
  SetDefault("progress_interval_s", interval);
  SetDefault("copy_threads", std::to_string(d.copy_threads));
  SetDefault("check_weights", Bool(d.check_weights));
}

StatusOr<hbm::HmmOptions> HmmOptionsFromFlags() {
  hbm::HmmOptions o;
  VMM_RETURN_IF_ERROR(DeviceFlags(&o.devices));
  VMM_RETURN_IF_ERROR(MemoryFlags(&o.memory));
  VMM_RETURN_IF_ERROR(LoaderFlags(&o.loader));
  VMM_RETURN_IF_ERROR(IntIn("copy_threads", FLAGS_copy_threads, 0, 256));
  o.copy_threads_per_device = FLAGS_copy_threads;
  o.check_weights = FLAGS_check_weights;
  return o;
}

Status ForwardFlagAlias(const std::string& alias, const std::string& flag) {
  gflags::CommandLineFlagInfo a, f;
  if (!gflags::GetCommandLineFlagInfo(alias.c_str(), &a) ||
      !gflags::GetCommandLineFlagInfo(flag.c_str(), &f)) {
    return Status::InvalidArgument("no flag --" + alias + " or --" + flag);
  }
  if (a.is_default) return Status::Ok();
  if (!f.is_default && f.current_value != a.current_value) {
    return Status::InvalidArgument("--" + alias + "=" + a.current_value + " and --" + flag + "=" +
                                   f.current_value + " name the same setting: give one");
  }
  if (gflags::SetCommandLineOption(flag.c_str(), a.current_value.c_str()).empty()) {
    return Status::InvalidArgument("--" + alias + "=" + a.current_value + ": not a value of --" +
                                   flag);
  }
  Aliases()[flag] = alias;
  return Status::Ok();
}

}  // namespace emoe::tools
