#include "engine/local_instance.h"

#include <pthread.h>
#include <sched.h>

#include <barrier>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include <cblas.h>

#include "experts/placement.h"
#include "laps.h"

namespace emoe::engine {

Status InstanceOptions::Validate() const {
  if (!(compute_share > 0.0 && compute_share <= 1.0)) {
    return Status::InvalidArgument("compute share must be in (0, 1], got " +
                                   std::to_string(compute_share));
  }
  if (threads_per_device < 1 || threads_per_device > 64) {
    return Status::InvalidArgument("threads per device must be in 1..64, got " +
                                   std::to_string(threads_per_device));
  }
  if (threads_per_device > 1 && compute_share < 1.0) {
    return Status::InvalidArgument(
        "a compute share below 1 needs one thread per device (it is accounted per thread)");
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<LocalInstance>> LocalInstance::Boot(const ModelConfig& config,
                                                             std::vector<std::vector<int>> cpus,
                                                             InstanceOptions options,
                                                             hbm::Hmm* hmm) {
  VMM_RETURN_IF_ERROR(options.Validate());
  VMM_RETURN_IF_ERROR(config.Validate());
  if (cpus.empty()) return Status::InvalidArgument("an instance needs at least one rank");
  auto inst = std::unique_ptr<LocalInstance>(new LocalInstance());
  inst->config_ = config;
  inst->options_ = options;
  inst->hmm_ = hmm;
  for (size_t r = 0; r < cpus.size(); ++r) {
    inst->teams_.push_back(std::make_unique<ThreadTeam>(options.threads_per_device, cpus[r]));
    inst->workers_.emplace_back(&LocalInstance::WorkerLoop, inst.get(), static_cast<int>(r),
                                cpus[r]);
    pthread_setname_np(inst->workers_.back().native_handle(),
                       ("rank-" + std::to_string(r)).c_str());
  }
  // Warm the BLAS and the workers' stacks on scratch data.
  inst->RunOnWorkers([](int) {
    std::vector<float> a(64 * 64, 1.0f), c(64 * 64);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 64, 64, 64, 1.0f, a.data(), 64, a.data(),
                64, 0.0f, c.data(), 64);
  });
  return inst;
}

Status LocalInstance::AttachSources(std::vector<int> devices,
                                    std::vector<std::unique_ptr<WeightSource>> sources,
                                    const experts::ExpertPlacement& placement) {
  if (attached_) return Status::FailedPrecondition("the instance is already attached");
  if (devices.size() != workers_.size() || sources.size() != workers_.size()) {
    return Status::FailedPrecondition("attach: " + std::to_string(devices.size()) +
                                      " devices and " + std::to_string(sources.size()) +
                                      " sources for an instance of " +
                                      std::to_string(workers_.size()) + " ranks");
  }
  VMM_RETURN_IF_ERROR(placement.Validate());
  if (placement.num_layers() != config_.num_hidden_layers ||
      placement.num_experts() != config_.num_experts) {
    return Status::InvalidArgument("attach: the placement's shape does not match the model");
  }
  std::vector<std::vector<int>> owner(placement.num_layers(),
                                      std::vector<int>(placement.num_experts(), -1));
  for (int l = 0; l < placement.num_layers(); ++l) {
    for (int e = 0; e < placement.num_experts(); ++e) {
      for (size_t r = 0; r < devices.size(); ++r) {
        if (devices[r] == placement.owner[l][e]) owner[l][e] = static_cast<int>(r);
      }
      if (owner[l][e] < 0) {
        return Status::InvalidArgument("attach: expert " + std::to_string(e) + " of layer " +
                                       std::to_string(l) + " belongs to device " +
                                       std::to_string(placement.owner[l][e]) +
                                       ", which is not in the instance");
      }
    }
  }
  std::vector<Rank> ranks;
  for (size_t r = 0; r < sources.size(); ++r) {
    Rank rk;
    rk.source = std::move(sources[r]);
    auto mine = [&owner, r](int l, int e) { return owner[l][e] == static_cast<int>(r); };
    VMM_ASSIGN_OR_RETURN(rk.weights, ModelWeights::Bind(config_, *rk.source, mine));
    ranks.push_back(std::move(rk));
  }
  // Forward keeps a pointer to its weights: create them once the vector no longer moves.
  for (size_t r = 0; r < ranks.size(); ++r) {
    ranks[r].forward = std::make_unique<Forward>(&ranks[r].weights);
    ranks[r].forward->SetTeam(teams_[r].get());
    ranks[r].forward->SetFusedKernels(options_.fused_kernels);
  }
  ranks_ = std::move(ranks);
  devices_ = std::move(devices);
  placement_ = placement;
  owner_ = std::move(owner);
  attached_ = true;
  return Status::Ok();
}

Status LocalInstance::Attach(const AttachSpec& spec, AttachStats* stats) {
  if (hmm_ == nullptr) {
    return Status::FailedPrecondition("an in-process instance needs the HMM in this process");
  }
  if (attached_) return Status::FailedPrecondition("the instance is already attached");
  DeviceWeightsOptions wo;
  wo.prefix = spec.prefix;
  wo.private_copy = spec.private_copy;
  wo.experts = spec.experts;
  std::vector<std::unique_ptr<WeightSource>> sources;
  AttachStats local;
  if (stats == nullptr) stats = &local;
  Laps laps;
  for (int d : spec.devices) {
    DeviceWeightsStats ws;
    VMM_ASSIGN_OR_RETURN(auto w, DeviceWeights::Build(*hmm_, config_, d, spec.placement, wo, &ws));
    stats->bytes_mapped += ws.bytes_mapped;
    stats->bytes_copied += ws.bytes_copied;
    stats->slots += ws.slots;
    sources.push_back(std::move(w));
  }
  laps.Mark("weights", &stats->phase_s);
  VMM_RETURN_IF_ERROR(AttachSources(spec.devices, std::move(sources), spec.placement));
  laps.Mark("sources", &stats->phase_s);
  return Status::Ok();
}

Status LocalInstance::WarmUp() {
  const kv::KvGeometry g = KvGeometryFor(config_);
  std::vector<std::unique_ptr<kv::ContiguousSequence>> seqs;
  std::vector<SequenceInput> batch;
  for (int r = 0; r < num_ranks(); ++r) {
    seqs.push_back(std::make_unique<kv::ContiguousSequence>(g, 1));
    batch.push_back({seqs.back().get(), {0}, r});
  }
  return Step(batch).status();
}

StatusOr<std::unique_ptr<LocalInstance>> LocalInstance::Create(
    hbm::Hmm* hmm, const ModelConfig& config, std::vector<int> devices, InstanceOptions options,
    const experts::ExpertPlacement* placement) {
  if (devices.empty()) return Status::InvalidArgument("an instance needs at least one device");
  std::vector<std::vector<int>> cpus;
  for (int d : devices) {
    if (d < 0 || d >= hmm->num_devices()) {
      return Status::InvalidArgument("instance device " + std::to_string(d) +
                                     " is not a device of the HMM");
    }
    cpus.push_back(hmm->device(d).spec().cpus);
  }
  experts::ExpertPlacement p;
  if (placement != nullptr) {
    p = *placement;
  } else {
    VMM_ASSIGN_OR_RETURN(
        p, experts::InitialPlacement(config.num_hidden_layers, config.num_experts, devices));
  }
  VMM_ASSIGN_OR_RETURN(auto inst, Boot(config, std::move(cpus), options, hmm));
  AttachSpec spec;
  spec.devices = std::move(devices);
  spec.placement = std::move(p);
  VMM_RETURN_IF_ERROR(inst->Attach(spec, nullptr));
  return inst;
}

StatusOr<std::unique_ptr<LocalInstance>> LocalInstance::CreateFromSources(
    std::vector<std::unique_ptr<WeightSource>> sources, std::vector<std::vector<int>> cpus,
    const ModelConfig& config, InstanceOptions options) {
  if (sources.empty() || sources.size() != cpus.size()) {
    return Status::InvalidArgument("an instance needs one weight source and CPU set per rank");
  }
  std::vector<int> devices;
  for (size_t i = 0; i < sources.size(); ++i) devices.push_back(static_cast<int>(i));
  VMM_ASSIGN_OR_RETURN(
      auto p, experts::InitialPlacement(config.num_hidden_layers, config.num_experts, devices));
  VMM_ASSIGN_OR_RETURN(auto inst, Boot(config, std::move(cpus), options));
  VMM_RETURN_IF_ERROR(inst->AttachSources(std::move(devices), std::move(sources), p));
  return inst;
}

LocalInstance::~LocalInstance() {
  {
    vmm::MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : workers_) t.join();
}

int Instance::rank_of_device(int device) const {
  const std::vector<int>& d = devices();
  for (size_t r = 0; r < d.size(); ++r) {
    if (d[r] == device) return static_cast<int>(r);
  }
  return -1;
}

void LocalInstance::WorkerLoop(int r, std::vector<int> cpus) {
  if (!cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : cpus) CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
  }
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      vmm::MutexLock l(&mu_);
      while (!stop_ && generation_ == seen) cv_.Wait(&mu_);
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(r);
    vmm::MutexLock l(&mu_);
    if (--pending_ == 0) done_cv_.SignalAll();
  }
}

void LocalInstance::RunOnWorkers(const std::function<void(int)>& job) {
  vmm::MutexLock l(&mu_);
  job_ = &job;
  pending_ = num_ranks();
  ++generation_;
  cv_.SignalAll();
  while (pending_ != 0) done_cv_.Wait(&mu_);
  job_ = nullptr;
}

// The state of one step, shared by every rank's worker: built by Step on its stack, each
// sequence's buffers written only by its rank except where a phase says otherwise.
struct LocalInstance::StepState {
  using Routes = std::vector<std::vector<std::pair<int, float>>>;  // [token][k] (expert, weight)
  StepState(const std::vector<SequenceInput>& b, int num_ranks)
      : batch(b), n(static_cast<int>(b.size())), sync(num_ranks) {}
  const std::vector<SequenceInput>& batch;
  const int n;
  std::vector<int64_t> t0;                     // each sequence's length before the step
  std::vector<std::vector<float>> h, x;        // hidden states, normalized activations [token x H]
  std::vector<Routes> routes;                  // written in A, read in B and C by every rank
  std::vector<std::vector<int64_t>> slot;      // (token * K + k) -> row in expert_out[e], in B
  std::vector<std::vector<float>> expert_out;  // [expert][row x H], written in B by its owner
  std::vector<std::vector<float>> logits;      // [sequence][vocab]
  std::barrier<> sync;                         // between the phases
};

// A rank's scratch for one step.
struct LocalInstance::RankScratch {
  std::vector<float> xs;                      // one expert's input rows
  std::vector<std::pair<int, int64_t>> rows;  // (sequence, token) routed to one expert
  std::vector<float> o;                       // one token's combined expert output
};

Status LocalInstance::ValidateStep(const std::vector<SequenceInput>& batch) {
  if (!attached_) return Status::FailedPrecondition("step on an instance that is not attached");
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
  return Status::Ok();
}

void LocalInstance::AttentionPhase(StepState& s, int l, int r) {
  Forward& f = *ranks_[r].forward;
  std::vector<AttentionInput> seqs;
  for (int i = 0; i < s.n; ++i) {
    if (s.batch[i].rank != r) continue;
    seqs.push_back(
        {s.t0[i], static_cast<int64_t>(s.batch[i].tokens.size()), s.batch[i].kv, s.h[i].data()});
  }
  f.AttentionBlocks(l, seqs);
  for (int i = 0; i < s.n; ++i) {
    if (s.batch[i].rank != r) continue;
    f.Route(l, s.h[i].data(), s.batch[i].tokens.size(), s.x[i].data(), &s.routes[i]);
  }
}

void LocalInstance::ExpertPhase(StepState& s, int l, int r, RankScratch* scratch) {
  Forward& f = *ranks_[r].forward;
  const int64_t H = config_.hidden_size, K = config_.num_experts_per_tok;
  std::vector<std::pair<int, int64_t>>& rows = scratch->rows;
  for (int e = 0; e < config_.num_experts; ++e) {
    if (owner_[l][e] != r) continue;
    rows.clear();
    for (int i = 0; i < s.n; ++i) {
      for (size_t t = 0; t < s.routes[i].size(); ++t) {
        for (int k = 0; k < K; ++k) {
          if (s.routes[i][t][k].first == e) {
            s.slot[i][t * K + k] = static_cast<int64_t>(rows.size());
            rows.emplace_back(i, t);
          }
        }
      }
    }
    if (rows.empty()) continue;
    ++experts_run_[r];
    scratch->xs.resize(rows.size() * H);
    for (size_t j = 0; j < rows.size(); ++j) {
      std::memcpy(&scratch->xs[j * H], &s.x[rows[j].first][rows[j].second * H], H * sizeof(float));
    }
    s.expert_out[e].resize(rows.size() * H);
    f.Expert(l, e, scratch->xs.data(), rows.size(), s.expert_out[e].data());
  }
}

void LocalInstance::CombinePhase(StepState& s, int r, RankScratch* scratch) {
  const int64_t H = config_.hidden_size, K = config_.num_experts_per_tok;
  std::vector<float>& o = scratch->o;
  o.resize(H);
  for (int i = 0; i < s.n; ++i) {
    if (s.batch[i].rank != r) continue;
    for (size_t t = 0; t < s.routes[i].size(); ++t) {
      std::fill(o.begin(), o.end(), 0.0f);
      for (int k = 0; k < K; ++k) {
        const auto [e, w] = s.routes[i][t][k];
        const float* y = &s.expert_out[e][s.slot[i][t * K + k] * H];
        for (int64_t d = 0; d < H; ++d) o[d] += w * y[d];
      }
      for (int64_t d = 0; d < H; ++d) s.h[i][t * H + d] += o[d];
    }
  }
}

void LocalInstance::RunRank(StepState& s, int r) {
  auto thread_cpu_s = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  };
  const double cpu0 = thread_cpu_s();
  const int64_t H = config_.hidden_size;
  Forward& f = *ranks_[r].forward;
  for (int i = 0; i < s.n; ++i) {
    if (s.batch[i].rank == r) f.Embed(s.batch[i].tokens, s.h[i].data());
  }
  RankScratch scratch;
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    // A: attention and routing for this rank's sequences.
    AttentionPhase(s, l, r);
    s.sync.arrive_and_wait();
    // B: this rank's experts over every routed token, in global (sequence, token) order.
    ExpertPhase(s, l, r, &scratch);
    s.sync.arrive_and_wait();
    // C: combine for this rank's tokens, experts in ascending id.
    CombinePhase(s, r, &scratch);
  }
  for (int i = 0; i < s.n; ++i) {
    if (s.batch[i].rank != r) continue;
    s.logits[i].resize(config_.vocab_size);
    const int64_t last = s.batch[i].tokens.size() - 1;
    f.Logits(&s.h[i][last * H], s.logits[i].data());
    s.batch[i].kv->SetLength(s.t0[i] + s.batch[i].tokens.size());
  }
  busy_s_[r] = thread_cpu_s() - cpu0;
  if (options_.compute_share < 1.0) {
    const double idle = busy_s_[r] * (1.0 / options_.compute_share - 1.0);
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(idle);
    std::this_thread::sleep_until(until);
    idle_s_[r] = idle;
  }
}

int64_t LocalInstance::last_experts_run() const {
  int64_t n = 0;
  for (int64_t e : experts_run_) n += e;
  return n;
}

StatusOr<std::vector<std::vector<float>>> LocalInstance::Step(
    const std::vector<SequenceInput>& batch) {
  VMM_RETURN_IF_ERROR(ValidateStep(batch));
  const int64_t H = config_.hidden_size, K = config_.num_experts_per_tok;
  StepState s(batch, num_ranks());
  s.t0.resize(s.n);
  s.h.resize(s.n);
  s.x.resize(s.n);
  s.routes.resize(s.n);
  s.slot.resize(s.n);
  s.expert_out.resize(config_.num_experts);
  s.logits.resize(s.n);
  for (int i = 0; i < s.n; ++i) {
    s.t0[i] = batch[i].kv->length();
    s.h[i].resize(batch[i].tokens.size() * H);
    s.x[i].resize(batch[i].tokens.size() * H);
    s.slot[i].resize(batch[i].tokens.size() * K);
  }
  busy_s_.assign(num_ranks(), 0.0);
  experts_run_.assign(num_ranks(), 0);
  idle_s_.assign(num_ranks(), 0.0);
  RunOnWorkers([this, &s](int r) { RunRank(s, r); });
  return std::move(s.logits);
}

}  // namespace emoe::engine
