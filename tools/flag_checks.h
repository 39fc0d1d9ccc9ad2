// tools/flag_checks.h: what every binary in tools/ shares about its command line: its exit
// codes, the parse (gflags, with exit codes of our own), and checks of flag values whose
// messages name the flag ("--settle_s must be a finite number in [0, 3600], got -1").
//
// A binary reads its flags as: ParseFlags (unknown flags, unparseable values, stray arguments),
// then one validation function of its own made of the checks below (FirstError over a table of
// them), then HmmOptionsFromFlags where it has the HMM flags; nothing starts before all three.
//
// Thread safety: call from main() only (gflags' flag registry is process-wide).
#ifndef TOOLS_FLAG_CHECKS_H_
#define TOOLS_FLAG_CHECKS_H_

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "vmm/status.h"

namespace emoe::tools {

// The exit codes of every binary in tools/ (each one's --help lists those it uses).
enum ExitCode : int {
  kExitOk = 0,              // done
  kExitError = 1,           // the run failed (the message says what); host_doctor --strict: MISSING
  kExitUsage = 2,           // a bad command line: the message names the flag (nothing was started)
  kExitRequestsFailed = 3,  // the run completed, but requests failed or were rejected
};

// The "exit codes:" paragraph of a binary's --help; with `requests`, code 3 too.
std::string ExitCodesHelp(bool requests);

// Parses the command line as gflags::ParseCommandLineFlags(argc, argv, true) does, but a flag
// gflags does not know, a non-boolean flag without its value, a value that does not parse as
// the flag's type, or an argument that is not a flag prints "<prog>: <what>" on stderr and
// gives kExitUsage (gflags would exit 1); --help and --helpfull print the usage on stdout and
// give kExitOk (gflags: 1). Flags read from --flagfile / --fromenv are gflags' own to check.
// Returns the exit code when main() must return now, nullopt when the flags are set.
std::optional<int> ParseFlags(const char* prog, int* argc, char*** argv);

// The checks: Ok, or kInvalidArgument whose message starts with "--<flag>".
// An integer in [lo, hi]: "--concurrency must be an integer in 1..4096, got 0".
vmm::Status IntIn(const char* flag, int64_t value, int64_t lo, int64_t hi);
// A finite number from lo (excluded with lo_open) up to hi (included; +inf: no upper bound):
// "--top_p must be a finite number in (0, 1], got 2".
vmm::Status RealIn(const char* flag, double value, double lo, bool lo_open,
                   double hi = std::numeric_limits<double>::infinity());
// A non-empty string.
vmm::Status NonEmpty(const char* flag, const std::string& value);
// One of `choices` ("" only when it is one of them).
vmm::Status OneOf(const char* flag, const std::string& value,
                  std::initializer_list<const char*> choices);
// A non-empty list separated by `sep` without empty items, into *items (may be null).
vmm::Status List(const char* flag, const std::string& value, char sep,
                 std::vector<std::string>* items);
// A non-empty comma-separated list of integers in [lo, hi], into *out (may be null).
vmm::Status IntList(const char* flag, const std::string& value, int64_t lo, int64_t hi,
                    std::vector<int>* out);
// Paths; an empty value is Ok (the flag was not given). An existing directory; an existing
// UNIX socket; an existing regular file (not a FIFO: reading one could block forever); an
// executable file; a file that can be created (its directory exists).
vmm::Status Directory(const char* flag, const std::string& path);
vmm::Status RegularFile(const char* flag, const std::string& path);
vmm::Status Socket(const char* flag, const std::string& path);
vmm::Status Executable(const char* flag, const std::string& path);
vmm::Status CreatableFile(const char* flag, const std::string& path);

// `s` (a check done by a library) as the check of --<flag>: an error is kInvalidArgument
// "--<flag>: <its message>"; Ok stays Ok.
vmm::Status Named(const char* flag, const vmm::Status& s);

// The first error of `checks` (all of them are evaluated), or Ok.
vmm::Status FirstError(std::initializer_list<vmm::Status> checks);

}  // namespace emoe::tools

#endif  // TOOLS_FLAG_CHECKS_H_
