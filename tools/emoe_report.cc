// emoe's output (emoe_report.h).
#include "tools/emoe_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

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

bool IsRejected(const engine::RequestResult& r) { return !r.served(); }

void PrintPromptResults(const std::vector<engine::RequestResult>& results,
                        const std::vector<engine::Request>& reqs, const ModelText& text,
                        bool streamed) {
  for (const engine::RequestResult& r : results) {
    const long long id = static_cast<long long>(r.id);
    const std::vector<int32_t>& prompt = reqs[r.id].prompt;
    if (IsRejected(r)) {
      std::printf("[%lld] %s %s\n", id, text.DecodePrompt(prompt).c_str(), r.finish_reason.c_str());
      continue;
    }
    if (!streamed) {
      std::printf("[%lld] %s -> %s\n", id, text.DecodePrompt(prompt).c_str(),
                  text.DecodeOutput(prompt, r.output).c_str());
    }
    std::printf("[%lld] tokens:", id);
    for (int32_t t : r.output) std::printf(" %d", t);
    std::printf("\n[%lld] ttft %.1f ms, tpot %.2f ms, e2e %.1f ms (%s)\n", id, r.ttft_s() * 1e3,
                r.tpot_s() * 1e3, r.e2e_s() * 1e3, r.finish_reason.c_str());
  }
}

nlohmann::json WorkloadReport(const std::string& model, int devices, const std::string& workload,
                              const std::vector<engine::RequestResult>& results,
                              const std::vector<engine::Request>& reqs, double wall_s,
                              const vmm::Status& status) {
  std::vector<double> ttft, tpot, e2e;
  uint64_t out_tokens = 0, in_tokens = 0, preempted = 0, served = 0;
  std::string first_rejection;
  for (const engine::RequestResult& r : results) {
    if (IsRejected(r)) {
      if (first_rejection.empty()) first_rejection = r.finish_reason;
      continue;
    }
    ++served;
    ttft.push_back(r.ttft_s());
    tpot.push_back(r.tpot_s());
    e2e.push_back(r.e2e_s());
    out_tokens += r.output.size();
    in_tokens += reqs[r.id].prompt.size();
    preempted += r.preemptions;
  }
  const double per_s = wall_s > 0 ? 1 / wall_s : 0;
  nlohmann::json rep = {{"status", status.ok() ? "ok" : "error"},
                        {"model", model},
                        {"devices", devices},
                        {"workload", workload},
                        {"requests", reqs.size()},
                        {"served", served},
                        {"rejected", results.size() - served},
                        {"wall_s", wall_s},
                        {"requests_per_s", served * per_s},
                        {"output_tokens_per_s", out_tokens * per_s},
                        {"prompt_tokens", in_tokens},
                        {"output_tokens", out_tokens},
                        {"preemptions", preempted},
                        {"ttft_ms", Percentiles(ttft)},
                        {"tpot_ms", Percentiles(tpot)},
                        {"e2e_ms", Percentiles(e2e)}};
  if (!first_rejection.empty()) rep["first_rejection"] = first_rejection;
  if (!status.ok()) rep["error"] = status.ToString();
  return rep;
}

vmm::Status WriteReport(const nlohmann::json& report, const std::string& path) {
  std::ofstream out(path);
  out << report.dump(2) << "\n";
  if (!out) return vmm::Status::DataLoss("cannot write " + path);
  return vmm::Status::Ok();
}

}  // namespace emoe::tools
