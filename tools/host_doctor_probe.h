// tools/host_doctor_probe.h: what host_doctor finds out about the host (facts per feature) and its
// verdicts (OK, DEGRADED, MISSING, with the command that enables what is missing).
//
// Thread safety: Examine runs probes that create and remove a file, rings and mappings of its
// own; call it from one thread.
#ifndef TOOLS_HOST_DOCTOR_PROBE_H_
#define TOOLS_HOST_DOCTOR_PROBE_H_

#include <sys/capability.h>

#include <string>
#include <utility>
#include <vector>

#include "vmm/host.h"

namespace emoe::tools {

inline constexpr long kRecommendedMaxMapCount = 262144;

struct NumaFacts {
  bool available = false;
  std::vector<vmm::NumaNode> nodes;
  std::vector<vmm::HugePagePool> pools;  // one per node when available, else empty
  std::string mbind_error;               // "" when mbind(MPOL_BIND) to the first node works
};

struct ThpFacts {
  vmm::ShmemThpMode mode;
  bool usable = false;
  std::string reason;  // why not, when !usable
};

struct UringFacts {
  bool available = false;
  std::string error;      // why io_uring_queue_init failed
  std::string disabled;   // kernel.io_uring_disabled, "" when absent
  bool seccomp = false;   // a seccomp filter is active on this process
  unsigned features = 0;  // IORING_FEAT_* of a default ring
  std::string sqpoll;     // "" when an IORING_SETUP_SQPOLL ring can be created, else the error
  int supported = 0;      // opcodes the kernel supports
  int known = 0;          // opcodes the kernel knows (last_op + 1)
  std::vector<std::pair<const char*, bool>> opcodes;  // the ones the loader may use
};

struct CapFact {
  const char* name;
  cap_value_t value;
  const char* enables;
  bool effective = false;
  bool permitted = false;
};

struct CapFacts {
  std::string error;  // cap_get_proc failure
  std::vector<CapFact> caps;
  long long memlock_bytes = -1;  // RLIMIT_MEMLOCK soft limit, -1 when unlimited
};

struct ODirectFacts {
  std::string dir;
  bool works = false;
  bool unsupported = false;  // the file system refused O_DIRECT (EINVAL)
  std::string tested;        // what was tried
  std::string error;
};

struct Verdict {
  std::string feature;
  std::string state;  // OK, DEGRADED, MISSING
  std::string detail;
  std::string fix;  // command that enables it; "" when nothing to do
};

struct Report {
  NumaFacts numa;
  vmm::HugePagePool pool;
  ThpFacts thp;
  UringFacts uring;
  CapFacts caps;
  ODirectFacts odirect;
  long max_map_count = -1;
  std::vector<Verdict> verdicts;
};

// Runs every probe (O_DIRECT in `dir`) and judges the results.
Report Examine(const std::string& dir);

// The names of the ring features that matter to a loader.
std::vector<std::string> FeatureNames(unsigned features);

// `parts` joined by `sep`.
std::string Join(const std::vector<std::string>& parts, const std::string& sep);

}  // namespace emoe::tools

#endif  // TOOLS_HOST_DOCTOR_PROBE_H_
