// emoe's output (emoe_report.h).
#include "tools/emoe_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "tools/emoe_workload.h"

namespace emoe::tools {
namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

nlohmann::json Percentiles(const std::vector<double>& seconds) {
  return {{"p50", Percentile(seconds, 50) * 1e3},
          {"p90", Percentile(seconds, 90) * 1e3},
          {"p99", Percentile(seconds, 99) * 1e3}};
}

}  // namespace

void PrintPromptResults(const std::vector<engine::RequestResult>& results,
                        const std::vector<engine::Request>& reqs, bool streamed) {
  for (const engine::RequestResult& r : results) {
    if (!streamed) {
      std::printf("[%lld] %s -> %s\n", static_cast<long long>(r.id),
                  Decode(reqs[r.id].prompt).c_str(), Decode(r.output).c_str());
    }
    std::printf("[%lld] tokens:", static_cast<long long>(r.id));
    for (int32_t t : r.output) std::printf(" %d", t);
    std::printf("\n[%lld] ttft %.1f ms, tpot %.2f ms, e2e %.1f ms\n", static_cast<long long>(r.id),
                r.ttft_s() * 1e3, r.tpot_s() * 1e3, r.e2e_s() * 1e3);
  }
}

nlohmann::json WorkloadReport(const std::string& model, int devices, const std::string& workload,
                              const std::vector<engine::RequestResult>& results,
                              const std::vector<engine::Request>& reqs, double wall_s) {
  std::vector<double> ttft, tpot, e2e;
  uint64_t out_tokens = 0, in_tokens = 0, preempted = 0;
  for (const engine::RequestResult& r : results) {
    ttft.push_back(r.ttft_s());
    tpot.push_back(r.tpot_s());
    e2e.push_back(r.e2e_s());
    out_tokens += r.output.size();
    in_tokens += reqs[r.id].prompt.size();
    preempted += r.preemptions;
  }
  return {{"model", model},
          {"devices", devices},
          {"workload", workload},
          {"requests", results.size()},
          {"wall_s", wall_s},
          {"requests_per_s", results.size() / wall_s},
          {"output_tokens_per_s", out_tokens / wall_s},
          {"prompt_tokens", in_tokens},
          {"output_tokens", out_tokens},
          {"preemptions", preempted},
          {"ttft_ms", Percentiles(ttft)},
          {"tpot_ms", Percentiles(tpot)},
          {"e2e_ms", Percentiles(e2e)}};
}

vmm::Status WriteReport(const nlohmann::json& report, const std::string& path) {
  std::ofstream out(path);
  out << report.dump(2) << "\n";
  if (!out) return vmm::Status::DataLoss("cannot write " + path);
  return vmm::Status::Ok();
}

}  // namespace emoe::tools
