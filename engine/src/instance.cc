#include "engine/instance.h"

#include <pthread.h>
#include <sched.h>

#include <barrier>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "experts/placement.h"

namespace emoe::engine {

Status InstanceOptions::Validate() const {
  if (!(compute_share > 0.0 && compute_share <= 1.0)) {
    return Status::InvalidArgument("compute share must be in (0, 1], got " +
                                   std::to_string(compute_share));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Instance>> Instance::Create(const hbm::Hmm* hmm, const ModelConfig& config,
                                                     std::vector<int> devices,
                                                     InstanceOptions options) {
  if (devices.empty()) return Status::InvalidArgument("an instance needs at least one device");
  std::vector<std::unique_ptr<WeightSource>> sources;
  std::vector<std::vector<int>> cpus;
  for (int d : devices) {
    if (d < 0 || d >= hmm->num_devices()) {
      return Status::InvalidArgument("instance device " + std::to_string(d) +
                                     " is not a device of the HMM");
    }
    sources.push_back(std::make_unique<HmmWeightSource>(hmm, d));
    cpus.push_back(const_cast<hbm::Hmm*>(hmm)->device(d).spec().cpus);
  }
  VMM_ASSIGN_OR_RETURN(auto inst,
                       CreateFromSources(std::move(sources), std::move(cpus), config, options));
  inst->devices_ = std::move(devices);
  return inst;
}

StatusOr<std::unique_ptr<Instance>> Instance::CreateFromSources(
    std::vector<std::unique_ptr<WeightSource>> sources, std::vector<std::vector<int>> cpus,
    const ModelConfig& config, InstanceOptions options) {
  VMM_RETURN_IF_ERROR(options.Validate());
  if (sources.empty() || sources.size() != cpus.size()) {
    return Status::InvalidArgument("an instance needs one weight source and CPU set per rank");
  }
  auto inst = std::unique_ptr<Instance>(new Instance());
  inst->config_ = config;
  inst->options_ = options;
  for (size_t i = 0; i < sources.size(); ++i) inst->devices_.push_back(static_cast<int>(i));
  VMM_ASSIGN_OR_RETURN(inst->owner_,
                       experts::BalancedPlacement(config.num_experts, inst->num_ranks()));
  for (size_t i = 0; i < sources.size(); ++i) {
    Rank r;
    r.source = std::move(sources[i]);
    VMM_ASSIGN_OR_RETURN(r.weights, ModelWeights::Bind(config, *r.source));
    r.cpus = std::move(cpus[i]);
    inst->ranks_.push_back(std::move(r));
  }
  // Forward keeps a pointer to its weights: create them once the vector no longer moves.
  for (Rank& r : inst->ranks_) r.forward = std::make_unique<Forward>(&r.weights);
  return inst;
}

StatusOr<std::vector<std::vector<float>>> Instance::Step(const std::vector<SequenceInput>& batch) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, K = c.num_experts_per_tok;
  const int n = static_cast<int>(batch.size());
  for (const SequenceInput& in : batch) {
    if (in.rank < 0 || in.rank >= num_ranks() || in.kv == nullptr) {
      return Status::InvalidArgument("step input with rank " + std::to_string(in.rank) + " of " +
                                     std::to_string(num_ranks()) + " or without KV");
    }
  }
  // Validate and reserve everything before any work (rank 0's Forward only checks and reserves).
  for (const SequenceInput& in : batch) {
    VMM_RETURN_IF_ERROR(ranks_[in.rank].forward->Prepare(in.tokens, in.kv));
  }
  // Shared buffers: hidden states, normalized activations, routes, expert outputs.
  std::vector<int64_t> t0(n);
  std::vector<std::vector<float>> h(n), x(n);
  std::vector<std::vector<std::vector<std::pair<int, float>>>> routes(n);
  std::vector<std::vector<int64_t>> slot(n);  // (token * K + k) -> row in expert_out[e]
  std::vector<std::vector<float>> expert_out(c.num_experts);
  std::vector<std::vector<float>> logits(n);
  for (int i = 0; i < n; ++i) {
    t0[i] = batch[i].kv->length();
    h[i].resize(batch[i].tokens.size() * H);
    x[i].resize(batch[i].tokens.size() * H);
    slot[i].resize(batch[i].tokens.size() * K);
  }
  std::barrier sync(num_ranks());
  busy_s_.assign(num_ranks(), 0.0);
  idle_s_.assign(num_ranks(), 0.0);
  auto thread_cpu_s = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  };
  auto work = [&](int r) {
    const double cpu0 = thread_cpu_s();
    if (!ranks_[r].cpus.empty()) {
      cpu_set_t set;
      CPU_ZERO(&set);
      for (int cpu : ranks_[r].cpus) CPU_SET(cpu, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
    }
    Forward& f = *ranks_[r].forward;
    for (int i = 0; i < n; ++i) {
      if (batch[i].rank == r) f.Embed(batch[i].tokens, h[i].data());
    }
    std::vector<float> xs;
    std::vector<std::pair<int, int64_t>> rows;  // (sequence, token) routed to one expert
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      // A: attention and routing for this rank's sequences.
      for (int i = 0; i < n; ++i) {
        if (batch[i].rank != r) continue;
        const int64_t count = batch[i].tokens.size();
        f.AttentionBlock(l, t0[i], count, batch[i].kv, h[i].data());
        f.Route(l, h[i].data(), count, x[i].data(), &routes[i]);
      }
      sync.arrive_and_wait();
      // B: this rank's experts over every routed token, in global (sequence, token) order.
      for (int e = 0; e < c.num_experts; ++e) {
        if (owner_[e] != r) continue;
        rows.clear();
        for (int i = 0; i < n; ++i) {
          for (size_t t = 0; t < routes[i].size(); ++t) {
            for (int k = 0; k < K; ++k) {
              if (routes[i][t][k].first == e) {
                slot[i][t * K + k] = static_cast<int64_t>(rows.size());
                rows.emplace_back(i, t);
              }
            }
          }
        }
        if (rows.empty()) continue;
        xs.resize(rows.size() * H);
        for (size_t j = 0; j < rows.size(); ++j) {
          std::memcpy(&xs[j * H], &x[rows[j].first][rows[j].second * H], H * sizeof(float));
        }
        expert_out[e].resize(rows.size() * H);
        f.Expert(l, e, xs.data(), rows.size(), expert_out[e].data());
      }
      sync.arrive_and_wait();
      // C: combine for this rank's tokens, experts in ascending id.
      std::vector<float> o(H);
      for (int i = 0; i < n; ++i) {
        if (batch[i].rank != r) continue;
        for (size_t t = 0; t < routes[i].size(); ++t) {
          std::fill(o.begin(), o.end(), 0.0f);
          for (int k = 0; k < K; ++k) {
            const auto [e, w] = routes[i][t][k];
            const float* y = &expert_out[e][slot[i][t * K + k] * H];
            for (int64_t d = 0; d < H; ++d) o[d] += w * y[d];
          }
          for (int64_t d = 0; d < H; ++d) h[i][t * H + d] += o[d];
        }
      }
    }
    for (int i = 0; i < n; ++i) {
      if (batch[i].rank != r) continue;
      logits[i].resize(c.vocab_size);
      const int64_t last = batch[i].tokens.size() - 1;
      f.Logits(&h[i][last * H], logits[i].data());
      batch[i].kv->SetLength(t0[i] + batch[i].tokens.size());
    }
    busy_s_[r] = thread_cpu_s() - cpu0;
    if (options_.compute_share < 1.0) {
      const double idle = busy_s_[r] * (1.0 / options_.compute_share - 1.0);
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(idle);
      std::this_thread::sleep_until(until);
      idle_s_[r] = idle;
    }
  };
  std::vector<std::thread> threads;
  // Every rank on a thread of its own: pinning must not touch the caller's thread.
  for (int r = 0; r < num_ranks(); ++r) threads.emplace_back(work, r);
  for (auto& t : threads) t.join();
  return logits;
}

}  // namespace emoe::engine
