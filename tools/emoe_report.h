// tools/emoe_report.h: what emoe prints when it is done: per prompt, the text, the token ids and
// the latencies; for a workload, one JSON report (throughput, TTFT / TPOT / E2E percentiles).
// tests/engine/*.cmake and *.sh read both ("[i] tokens: ..." lines, the JSON fields).
//
// Thread safety: prints to stdout; call from one thread.
#ifndef TOOLS_EMOE_REPORT_H_
#define TOOLS_EMOE_REPORT_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "tools/model_text.h"
#include "vmm/status.h"

namespace emoe::tools {

// Per result (sorted by id; ids index `reqs`): "[i] prompt -> output" (the texts `text`
// decodes) unless `streamed` (the text was printed as it came), then "[i] tokens: ..." (the
// output ids, a stop token included) and "[i] ttft .. ms, tpot .. ms, e2e .. ms (<finish
// reason>)"; a rejected request (finish_reason "rejected: ...") is one line
// "[i] prompt rejected: <why>".
void PrintPromptResults(const std::vector<engine::RequestResult>& results,
                        const std::vector<engine::Request>& reqs, const ModelText& text,
                        bool streamed);

// The workload report: status ("ok", or "error" with "error": `status`), model, devices,
// workload, requests (made), served, rejected (with first_rejection: why), wall_s,
// requests_per_s, output_tokens_per_s, prompt_tokens, output_tokens, preemptions (of the served
// ones), and ttft_ms / tpot_ms / e2e_ms as {p50, p90, p99} over the served ones. `results` may
// be those finished before an error. Result ids index `reqs`.
nlohmann::json WorkloadReport(const std::string& model, int devices, const std::string& workload,
                              const std::vector<engine::RequestResult>& results,
                              const std::vector<engine::Request>& reqs, double wall_s,
                              const vmm::Status& status);

// Writes `report` (dump(2) and a newline) to `path`; kDataLoss when it cannot.
vmm::Status WriteReport(const nlohmann::json& report, const std::string& path);

}  // namespace emoe::tools

#endif  // TOOLS_EMOE_REPORT_H_
