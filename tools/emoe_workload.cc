// emoe's requests (emoe_workload.h).
#include "tools/emoe_workload.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>

#include "vmm/file.h"

namespace emoe::tools {
namespace {

using engine::Request;

vmm::StatusOr<std::vector<Request>> PromptRequests(const WorkloadOptions& o,
                                                   const ModelText& text) {
  std::vector<Request> out;
  std::stringstream ss(o.prompts);
  std::string p;
  while (std::getline(ss, p, '|')) {
    Request r;
    r.id = out.size();
    if (o.chat) {
      VMM_ASSIGN_OR_RETURN(r.prompt, text.EncodeChat(p));
    } else {
      r.prompt = text.Encode(p);
    }
    r.max_new_tokens = o.max_new_tokens;
    r.temperature = o.temperature;
    r.top_p = o.top_p;
    r.seed = o.seed + r.id;
    out.push_back(std::move(r));
  }
  return out;
}

vmm::StatusOr<std::vector<Request>> TraceRequests(const WorkloadOptions& o, const ModelText& text,
                                                  std::mt19937_64* rng) {
  // Through vmm::ReadRegularFile: a FIFO or a directory named as the trace is refused by type
  // (a FIFO would block the open), an absent one is kNotFound.
  constexpr uint64_t kMaxTraceBytes = 1ull << 30;
  VMM_ASSIGN_OR_RETURN(const std::string csv,
                       vmm::ReadRegularFile(o.trace, "--trace", kMaxTraceBytes));
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  std::vector<Request> out;
  double first = -1;
  while (static_cast<int>(out.size()) < o.num_requests && std::getline(in, line)) {
    int hh, mm, ctx, gen;
    double ss;
    if (std::sscanf(line.c_str(), "%*d-%*d-%*d %d:%d:%lf,%d,%d", &hh, &mm, &ss, &ctx, &gen) != 5) {
      return vmm::Status::DataLoss("--trace " + o.trace + ": malformed line '" + line + "'");
    }
    const double t = hh * 3600 + mm * 60 + ss;
    if (first < 0) first = t;
    Request r;
    r.id = out.size();
    r.arrival_s = (t - first) / o.time_scale;
    const int plen = std::clamp(ctx, 1, o.max_prompt_tokens);
    for (int i = 0; i < plen; ++i) r.prompt.push_back(text.RandomToken(rng));
    r.max_new_tokens = std::clamp(gen, 1, o.max_output_tokens);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Request> SyntheticRequests(const WorkloadOptions& o, const ModelText& text,
                                       std::mt19937_64* rng) {
  std::vector<Request> out;
  std::exponential_distribution<double> gap(o.rate);
  double t = 0;
  for (int i = 0; i < o.num_requests; ++i) {
    Request r;
    r.id = i;
    r.arrival_s = t;
    t += gap(*rng);
    const int plen = 1 + (*rng)() % o.max_prompt_tokens;
    for (int k = 0; k < plen; ++k) r.prompt.push_back(text.RandomToken(rng));
    r.max_new_tokens = 1 + (*rng)() % o.max_output_tokens;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

vmm::StatusOr<std::vector<Request>> MakeRequests(const WorkloadOptions& o, const ModelText& text) {
  std::mt19937_64 rng(o.seed);
  std::vector<Request> out;
  if (o.kind.empty()) {
    VMM_ASSIGN_OR_RETURN(out, PromptRequests(o, text));
  } else if (o.kind == "trace") {
    VMM_ASSIGN_OR_RETURN(out, TraceRequests(o, text, &rng));
  } else if (o.kind == "synthetic") {
    out = SyntheticRequests(o, text, &rng);
  } else {
    return vmm::Status::InvalidArgument("--workload must be trace or synthetic");
  }
  if (!o.ignore_eos) {
    for (Request& r : out) r.stop_token_ids = text.StopTokenIds();
  }
  return out;
}

}  // namespace emoe::tools
