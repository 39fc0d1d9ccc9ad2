// The command line of every binary in tools/ (flag_checks.h).
#include "tools/flag_checks.h"

#include <gflags/gflags.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace emoe::tools {
namespace {

using vmm::Status;

std::string Num(double v) {
  char b[40];
  std::snprintf(b, sizeof(b), "%g", v);
  return b;
}

Status Bad(const char* flag, const std::string& what) {
  return Status::InvalidArgument(std::string("--") + flag + " " + what);
}

// One argv entry (or two: "--flag value") against gflags' registry, as gflags would read it;
// `*i` moves past what it takes. Flags are set under the caller's FlagSaver.
Status CheckArgument(int argc, char** argv, int* i) {
  std::string a = argv[*i];
  if (a.size() < 2 || a[0] != '-')
    return Status::InvalidArgument("unexpected argument '" + a + "'");
  a.erase(0, a[1] == '-' ? 2 : 1);
  const size_t eq = a.find('=');
  const std::string name = a.substr(0, eq);
  gflags::CommandLineFlagInfo info;
  if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
    // --noX is X=false for a boolean X.
    if (eq == std::string::npos && name.rfind("no", 0) == 0 &&
        gflags::GetCommandLineFlagInfo(name.c_str() + 2, &info) && info.type == "bool") {
      return Status::Ok();
    }
    return Status::InvalidArgument("unknown flag --" + name + " (see --help)");
  }
  std::string value;
  if (eq != std::string::npos) {
    value = a.substr(eq + 1);
  } else if (info.type == "bool") {
    return Status::Ok();
  } else if (*i + 1 < argc) {
    value = argv[++*i];
  } else {
    return Status::InvalidArgument("--" + name + " needs a value (--" + name + "=...)");
  }
  if (name == "flagfile" || name == "fromenv" || name == "tryfromenv") return Status::Ok();
  if (gflags::SetCommandLineOption(name.c_str(), value.c_str()).empty()) {
    return Status::InvalidArgument("--" + name + "=" + value + ": not a valid " + info.type +
                                   " value");
  }
  return Status::Ok();
}

bool HelpAsked() {
  for (const char* f : {"help", "helpfull"}) {
    std::string v;
    if (gflags::GetCommandLineOption(f, &v) && v == "true") return true;
  }
  return false;
}

struct stat* StatOf(const std::string& path, struct stat* st) {
  return stat(path.c_str(), st) == 0 ? st : nullptr;
}

}  // namespace

std::string ExitCodesHelp(bool requests) {
  std::string s =
      "\n\nexit codes: 0 done; 1 the run failed (the message says what); 2 a bad command line "
      "(the message names the flag; nothing was started)";
  if (requests) s += "; 3 the run completed, but requests failed or were rejected";
  return s;
}

std::optional<int> ParseFlags(const char* prog, int* argc, char*** argv) {
  {
    gflags::FlagSaver restore;  // the check sets flags; the real parse below sets them again
    for (int i = 1; i < *argc; ++i) {
      if (std::strcmp((*argv)[i], "--") == 0) {
        if (i + 1 < *argc) {
          std::fprintf(stderr, "%s: unexpected argument '%s'\n", prog, (*argv)[i + 1]);
          return kExitUsage;
        }
        break;
      }
      if (Status s = CheckArgument(*argc, *argv, &i); !s.ok()) {
        std::fprintf(stderr, "%s: %s\n", prog, s.message().c_str());
        return kExitUsage;
      }
    }
  }
  gflags::ParseCommandLineNonHelpFlags(argc, argv, true);
  if (HelpAsked()) {
    gflags::ShowUsageWithFlags((*argv)[0]);
    return kExitOk;
  }
  gflags::HandleCommandLineHelpFlags();  // --version, --helpxml, ...: gflags' own
  return std::nullopt;
}

Status IntIn(const char* flag, int64_t value, int64_t lo, int64_t hi) {
  if (value >= lo && value <= hi) return Status::Ok();
  const std::string range = hi == std::numeric_limits<int64_t>::max()
                                ? ">= " + std::to_string(lo)
                                : "in " + std::to_string(lo) + ".." + std::to_string(hi);
  return Bad(flag, "must be an integer " + range + ", got " + std::to_string(value));
}

Status RealIn(const char* flag, double value, double lo, bool lo_open, double hi) {
  const bool above = lo_open ? value > lo : value >= lo;  // false for NaN
  if (std::isfinite(value) && above && value <= hi) return Status::Ok();
  std::string range;
  if (std::isinf(hi)) {
    range = (lo_open ? "> " : ">= ") + Num(lo);
  } else {
    range = std::string("in ") + (lo_open ? "(" : "[") + Num(lo) + ", " + Num(hi) + "]";
  }
  return Bad(flag, "must be a finite number " + range + ", got " + Num(value));
}

Status NonEmpty(const char* flag, const std::string& value) {
  return value.empty() ? Bad(flag, "must not be empty") : Status::Ok();
}

Status OneOf(const char* flag, const std::string& value,
             std::initializer_list<const char*> choices) {
  std::string names;
  for (const char* c : choices) {
    if (value == c) return Status::Ok();
    names += std::string(names.empty() ? "" : ", ") + (*c ? c : "''");
  }
  return Bad(flag, "must be one of " + names + ", got '" + value + "'");
}

Status List(const char* flag, const std::string& value, char sep, std::vector<std::string>* items) {
  const std::string what = std::string("must be a non-empty '") + sep + "'-separated list";
  if (value.empty()) return Bad(flag, what + ", got ''");
  std::vector<std::string> out;
  for (size_t pos = 0;;) {
    const size_t end = value.find(sep, pos);
    out.push_back(value.substr(pos, end == std::string::npos ? end : end - pos));
    if (out.back().empty()) {
      return Bad(flag, what + " without empty items, got '" + value + "' (item " +
                           std::to_string(out.size()) + " is empty)");
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (items != nullptr) *items = std::move(out);
  return Status::Ok();
}

Status IntList(const char* flag, const std::string& value, int64_t lo, int64_t hi,
               std::vector<int>* out) {
  std::vector<std::string> items;
  VMM_RETURN_IF_ERROR(List(flag, value, ',', &items));
  std::vector<int> ints;
  for (const std::string& x : items) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(x.c_str(), &end, 10);
    if (errno != 0 || end == x.c_str() || *end != '\0' || v < lo || v > hi) {
      return Bad(flag, "entries must be integers in " + std::to_string(lo) + ".." +
                           std::to_string(hi) + ", got '" + x + "' in '" + value + "'");
    }
    ints.push_back(static_cast<int>(v));
  }
  if (out != nullptr) *out = std::move(ints);
  return Status::Ok();
}

Status Directory(const char* flag, const std::string& path) {
  struct stat st;
  if (path.empty() || (StatOf(path, &st) && S_ISDIR(st.st_mode))) return Status::Ok();
  return Bad(flag, "must be an existing directory, got '" + path + "'");
}

Status RegularFile(const char* flag, const std::string& path) {
  struct stat st;
  if (path.empty() || (StatOf(path, &st) && S_ISREG(st.st_mode))) return Status::Ok();
  return Bad(flag, "must be an existing regular file, got '" + path + "'");
}

Status Socket(const char* flag, const std::string& path) {
  struct stat st;
  if (path.empty() || (StatOf(path, &st) && S_ISSOCK(st.st_mode))) return Status::Ok();
  return Bad(flag, "must be the path of a UNIX socket, got '" + path + "'");
}

Status Executable(const char* flag, const std::string& path) {
  struct stat st;
  if (path.empty() ||
      (StatOf(path, &st) && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0)) {
    return Status::Ok();
  }
  return Bad(flag, "must be an executable file, got '" + path + "'");
}

Status CreatableFile(const char* flag, const std::string& path) {
  if (path.empty()) return Status::Ok();
  struct stat st;
  if (StatOf(path, &st) && S_ISDIR(st.st_mode)) {
    return Bad(flag, "must be a file to write, got the directory '" + path + "'");
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  if (StatOf(dir, &st) && S_ISDIR(st.st_mode)) return Status::Ok();
  return Bad(flag, "must be a file in an existing directory, got '" + path + "'");
}

Status Named(const char* flag, const Status& s) {
  if (s.ok()) return s;
  return Status::InvalidArgument(std::string("--") + flag + ": " + s.message());
}

Status FirstError(std::initializer_list<Status> checks) {
  for (const Status& s : checks) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace emoe::tools
