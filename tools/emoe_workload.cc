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

std::vector<Request> PromptRequests(const WorkloadOptions& o) {
  std::vector<Request> out;
  std::stringstream ss(o.prompts);
  std::string p;
  while (std::getline(ss, p, '|')) {
    Request r;
    r.id = out.size();
    r.prompt = Encode(p);
    r.max_new_tokens = o.max_new_tokens;
    r.temperature = o.temperature;
    r.top_p = o.top_p;
    r.seed = o.seed + r.id;
    out.push_back(std::move(r));
  }
  return out;
}

vmm::StatusOr<std::vector<Request>> TraceRequests(const WorkloadOptions& o, std::mt19937_64* rng) {
  // Through vmm::ReadRegularFile: a FIFO or a directory named as the trace is refused by type
  // (a FIFO would block the open), an absent one is kNotFound.
  constexpr uint64_t kMaxTraceBytes = 1ull << 30;
  VMM_ASSIGN_OR_RETURN(const std::string text,
                       vmm::ReadRegularFile(o.trace, "--trace", kMaxTraceBytes));
  std::istringstream in(text);
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
    for (int i = 0; i < plen; ++i) r.prompt.push_back(static_cast<int32_t>((*rng)() % 256));
    r.max_new_tokens = std::clamp(gen, 1, o.max_output_tokens);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Request> SyntheticRequests(const WorkloadOptions& o, std::mt19937_64* rng) {
  std::vector<Request> out;
  std::exponential_distribution<double> gap(o.rate);
  double t = 0;
  for (int i = 0; i < o.num_requests; ++i) {
    Request r;
    r.id = i;
    r.arrival_s = t;
    t += gap(*rng);
    const int plen = 1 + (*rng)() % o.max_prompt_tokens;
    for (int k = 0; k < plen; ++k) r.prompt.push_back(static_cast<int32_t>((*rng)() % 256));
    r.max_new_tokens = 1 + (*rng)() % o.max_output_tokens;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<int32_t> Encode(const std::string& text) {
  return std::vector<int32_t>(text.begin(), text.end());  // bytes as ids (0..255)
}

std::string Decode(const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 32 && id < 127) {
      out.push_back(static_cast<char>(id));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", id & 0xff);
      out += buf;
    }
  }
  return out;
}

vmm::StatusOr<std::vector<Request>> MakeRequests(const WorkloadOptions& o) {
  std::mt19937_64 rng(o.seed);
  if (o.kind.empty()) return PromptRequests(o);
  if (o.kind == "trace") return TraceRequests(o, &rng);
  if (o.kind == "synthetic") return SyntheticRequests(o, &rng);
  return vmm::Status::InvalidArgument("--workload must be trace or synthetic");
}

}  // namespace emoe::tools
