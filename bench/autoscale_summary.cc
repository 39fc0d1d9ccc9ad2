// autoscale_summary: the autoscaler evaluation's summary of policy runs
// (scripts/autoscale_eval.sh runs it last).
//
//   autoscale_summary --dir=DIR [--policies=static-min,static-peak,...] [--bin_s=5]
//
// Reads DIR/<policy>/load.json (serve_bench --json, with per_request rows) and
// DIR/<policy>/autoscale.jsonl (emoe_server --autoscale_log) for each policy; writes
// DIR/summary.json ({"policies": {"static-min": {...}, ...}}; the figures are defined in
// bench/autoscale_eval.h), DIR/summary.md (the table, also printed), DIR/<policy>/timeline.dat
// and DIR/autoscale.gp, and draws DIR/autoscale.png with gnuplot when it is installed (said and
// skipped when it is not).
#include <gflags/gflags.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/autoscale_eval.h"
#include "tools/flag_checks.h"
#include "vmm/file.h"

DEFINE_string(dir, "", "the evaluation's directory: one subdirectory per policy (required)");
DEFINE_string(policies, "",
              "the policies (subdirectories) to summarize, in the table's order; empty: every "
              "subdirectory holding a load.json, the issue's six first");
DEFINE_double(bin_s, 5, "seconds per bin of the timeline's arrival rate, > 0");
DEFINE_bool(plot, true, "draw DIR/autoscale.png with gnuplot (when it is installed)");

namespace {

namespace fs = std::filesystem;
namespace t = emoe::tools;
using vmm::Status;

const char* const kKnown[] = {"static-min", "static-peak",      "threshold",
                              "slo",        "slo-cold-restart", "slo-horizontal"};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The policies to read: --policies, or the subdirectories with a load.json.
std::vector<std::string> Policies() {
  if (!FLAGS_policies.empty()) return Split(FLAGS_policies);
  std::vector<std::string> found, out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(FLAGS_dir, ec)) {
    if (e.is_directory(ec) && fs::is_regular_file(e.path() / "load.json", ec)) {
      found.push_back(e.path().filename().string());
    }
  }
  std::sort(found.begin(), found.end());
  for (const char* k : kKnown) {
    if (std::find(found.begin(), found.end(), k) != found.end()) out.push_back(k);
  }
  for (const std::string& f : found) {
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  }
  return out;
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return Status::Unavailable(path + ": cannot write");
  return Status::Ok();
}

// One policy's summary; its timeline written beside its inputs.
vmm::StatusOr<nlohmann::json> Summarize(const std::string& name) {
  const std::string dir = FLAGS_dir + "/" + name;
  VMM_ASSIGN_OR_RETURN(const std::string load_text,
                       vmm::ReadRegularFile(dir + "/load.json", "load.json", 1ull << 30));
  VMM_ASSIGN_OR_RETURN(const emoe::bench::LoadRun load,
                       emoe::bench::ParseLoad(load_text, dir + "/load.json"));
  VMM_ASSIGN_OR_RETURN(
      const std::string log_text,
      vmm::ReadRegularFile(dir + "/autoscale.jsonl",
                           "autoscale.jsonl (emoe_server --autoscale_log)", 1ull << 30));
  VMM_ASSIGN_OR_RETURN(
      const emoe::bench::ServerLog log,
      emoe::bench::ParseServerLog(log_text, dir + "/autoscale.jsonl", load.start_unix_s));
  if (Status s =
          WriteFile(dir + "/timeline.dat", emoe::bench::TimelineData(load, log, FLAGS_bin_s));
      !s.ok()) {
    return s;
  }
  return emoe::bench::PolicySummary(load, log);
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "autoscale_summary: %s\n", message.c_str());
  return t::kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "the autoscaler evaluation's summary: summary.json, summary.md and autoscale.png from "
      "each policy's load.json and autoscale.jsonl" +
      t::ExitCodesHelp(/*requests=*/false));
  if (auto rc = t::ParseFlags("autoscale_summary", &argc, &argv)) return *rc;
  if (Status s = t::FirstError({t::NonEmpty("dir", FLAGS_dir), t::Directory("dir", FLAGS_dir),
                                t::RealIn("bin_s", FLAGS_bin_s, 0, true)});
      !s.ok()) {
    std::fprintf(stderr, "autoscale_summary: %s\n", s.message().c_str());
    return t::kExitUsage;
  }
  const std::vector<std::string> order = Policies();
  if (order.empty()) return Fail("--dir " + FLAGS_dir + ": no <policy>/load.json in it");
  nlohmann::json summary = {{"policies", nlohmann::json::object()}};
  for (const std::string& p : order) {
    auto s = Summarize(p);
    if (!s.ok()) return Fail("policy " + p + ": " + s.status().ToString());
    summary["policies"][p] = std::move(*s);
  }
  const std::string table = emoe::bench::MarkdownTable(summary, order);
  for (Status s :
       {WriteFile(FLAGS_dir + "/summary.json", summary.dump(2) + "\n"),
        WriteFile(FLAGS_dir + "/summary.md", table),
        WriteFile(FLAGS_dir + "/autoscale.gp",
                  emoe::bench::GnuplotScript(FLAGS_dir, order, FLAGS_dir + "/autoscale.png"))}) {
    if (!s.ok()) return Fail(s.message());
  }
  std::printf("%s", table.c_str());
  std::printf("autoscale_summary: wrote %s/summary.json, summary.md, autoscale.gp\n",
              FLAGS_dir.c_str());
  if (!FLAGS_plot) return t::kExitOk;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::printf(
        "autoscale_summary: gnuplot not installed (scripts/setup.sh installs "
        "gnuplot-nox): no autoscale.png; %s/autoscale.gp draws it\n",
        FLAGS_dir.c_str());
    return t::kExitOk;
  }
  const std::string cmd = "gnuplot '" + FLAGS_dir + "/autoscale.gp'";
  if (std::system(cmd.c_str()) != 0) return Fail(cmd + " failed");
  std::printf("autoscale_summary: drew %s/autoscale.png\n", FLAGS_dir.c_str());
  return t::kExitOk;
}
