// host_doctor: reports what this host offers the serving system and how to enable what is missing.
//
//   host_doctor [--dir=/path] [--json] [--strict]
//
// Sections: NUMA nodes (CPUs, memory, whether mbind works), the 2 MiB hugetlb pool (global and per
// node), shmem THP, io_uring (ring setup, features, SQPOLL, supported opcodes), capabilities
// (libcap) and RLIMIT_MEMLOCK, O_DIRECT in --dir, vm.max_map_count. Then one verdict per feature,
// with the command that enables what is not OK:
//   OK        works;
//   DEGRADED  works with limits, or a fallback covers it (hugetlb gone but shmem THP works);
//   MISSING   unavailable and nothing covers it.
// Exits 0 after the report; 1 with --strict when something is MISSING; 2 on a bad command line
// (tools/flag_checks.h).
//
// Uses only vmm/host.h from vmm; the io_uring, libcap, mbind and O_DIRECT probes live in
// host_doctor_probe.cc (facts and verdicts), the text and JSON in host_doctor_report.cc.
#include <gflags/gflags.h>

#include <cstdio>
#include <string>

#include "tools/flag_checks.h"
#include "tools/host_doctor_probe.h"
#include "tools/host_doctor_report.h"

DEFINE_string(dir, "/tmp", "directory in which to test O_DIRECT (where model files would live)");
DEFINE_bool(json, false, "print a JSON object instead of text");
DEFINE_bool(strict, false, "exit with status 1 when a feature is MISSING");

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "reports NUMA, huge pages, THP, io_uring, capabilities, O_DIRECT and vm.max_map_count, "
      "with a verdict per feature and how to enable what is missing\n\nexit codes: 0 reported; "
      "1 with --strict, a feature is MISSING; 2 a bad command line (the message names the flag)");
  if (auto rc = emoe::tools::ParseFlags("host_doctor", &argc, &argv)) return *rc;
  if (vmm::Status s = emoe::tools::FirstError(
          {emoe::tools::NonEmpty("dir", FLAGS_dir), emoe::tools::Directory("dir", FLAGS_dir)});
      !s.ok()) {
    std::fprintf(stderr, "host_doctor: %s\n", s.message().c_str());
    return emoe::tools::kExitUsage;
  }
  const emoe::tools::Report r = emoe::tools::Examine(FLAGS_dir);
  if (FLAGS_json) {
    emoe::tools::PrintJson(r);
  } else {
    emoe::tools::PrintText(r);
  }
  return FLAGS_strict && emoe::tools::AnyMissing(r.verdicts) ? emoe::tools::kExitError
                                                             : emoe::tools::kExitOk;
}
