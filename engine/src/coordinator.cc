#include "engine/coordinator.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "engine/deployment.h"
#include "hbm/server.h"
#include "instances/instance_pool.h"
#include "scale/procedure.h"
#include "serving/kv_store_set.h"
#include "serving/serving_loop.h"

namespace emoe::engine {

Status CoordinatorOptions::Validate() const {
  VMM_RETURN_IF_ERROR(instance.Validate());
  VMM_RETURN_IF_ERROR(scheduler.Validate());
  if (kv_bytes_per_device == 0) return Status::InvalidArgument("KV bytes per device must be > 0");
  if (block_tokens < 1) return Status::InvalidArgument("block_tokens must be >= 1");
  if (standby_pool < 0) return Status::InvalidArgument("standby_pool must be >= 0");
  if (scale_copies.max_parallel < 0) {
    return Status::InvalidArgument("scale_copies.max_parallel must be >= 0");
  }
  if (scale_copies.chunk_bytes == 0 || scale_copies.chunk_bytes % 4096 != 0) {
    return Status::InvalidArgument("scale_copies.chunk_bytes must be a positive multiple of 4096");
  }
  return Status::Ok();
}

Coordinator::Coordinator() : start_(std::chrono::steady_clock::now()) {}

StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(hbm::Hmm* hmm,
                                                           const hbm::Checkpoint& checkpoint,
                                                           const ModelConfig& config,
                                                           std::vector<int> devices,
                                                           CoordinatorOptions options) {
  auto control = std::make_unique<hbm::LocalHmmControl>(hmm);
  hbm::HmmControl* h = control.get();
  return Create(h, checkpoint, config, std::move(devices), std::move(options), std::move(control));
}

StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(
    hbm::HmmControl* hmm, const hbm::Checkpoint& checkpoint, const ModelConfig& config,
    std::vector<int> devices, CoordinatorOptions options, std::unique_ptr<hbm::HmmControl> owned) {
  VMM_RETURN_IF_ERROR(options.Validate());
  VMM_RETURN_IF_ERROR(ValidateCheckpoint(config, checkpoint));
  if (hmm->local() == nullptr && options.instance_binary.empty()) {
    return Status::FailedPrecondition(
        "the HMM runs in another process (hmmd): instances must run in processes of their own "
        "that attach to it (set CoordinatorOptions::instance_binary)");
  }
  std::sort(devices.begin(), devices.end());
  auto c = std::unique_ptr<Coordinator>(new Coordinator());
  c->owned_hmm_ = std::move(owned);
  c->hmm_ = hmm;
  c->options_ = options;
  c->vocab_size_ = config.vocab_size;
  vmm::MutexLock l(&c->control_mu_);
  c->ctx_ = std::make_unique<ScaleContext>();
  ScaleContext& x = *c->ctx_;
  x.hmm = hmm;
  x.checkpoint = &checkpoint;
  x.config = config;
  x.specs = ExpectedTensors(config);
  x.record_namespace = options.record_namespace;
  Coordinator* self = c.get();
  x.clock = [self] { return self->Now(); };
  x.scheduler = options.scheduler;
  x.copy_options = options.scale_copies;
  x.scheduler.clock = x.clock;
  VMM_ASSIGN_OR_RETURN(x.placement, experts::InitialPlacement(config.num_hidden_layers,
                                                              config.num_experts, devices));
  x.prefix = options.record_namespace + "g0/";
  VMM_RETURN_IF_ERROR(c->Start(devices));
  return c;
}

// The instances' side of the HMM: hmmd's socket, or one this coordinator serves for an HMM in
// this process; then the launcher of the instance kind the options ask for.
Status Coordinator::Start(const std::vector<int>& devices) {
  ScaleContext& x = *ctx_;
  auto all = [](const TensorSpec&, int) { return true; };
  VMM_RETURN_IF_ERROR(
      x.Load(DeploymentTable(x.specs, devices, x.placement, all), x.prefix).status());
  stores_ = std::make_unique<KvStoreSet>(hmm_, KvGeometryFor(x.config, options_.block_tokens),
                                         options_.kv_bytes_per_device);
  for (int d : devices) VMM_RETURN_IF_ERROR(stores_->Ensure(d).status());
  std::unique_ptr<InstanceLauncher> launcher;
  if (options_.instance_binary.empty()) {
    launcher = LocalLauncher(hmm_->local(), x.config, options_.instance);
  } else {
    std::string socket = hmm_->socket_path();  // hmmd serves the instances
    if (socket.empty()) {
      hbm::ServerOptions so;
      so.socket_path = options_.hmm_socket;
      if (so.socket_path.empty()) {
        static std::atomic<int> serial{0};
        const char* tmp = std::getenv("TMPDIR");
        so.socket_path = std::string(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") + "/emoe-hmm-" +
                         std::to_string(getpid()) + "-" + std::to_string(serial++) + ".sock";
      }
      hmm_server_ = std::make_unique<hbm::HmmServer>(hmm_->local(), so);
      VMM_RETURN_IF_ERROR(hmm_server_->Start());
      socket = so.socket_path;
    }
    std::vector<std::vector<int>> cpus;
    for (int d = 0; d < hmm_->num_devices(); ++d) cpus.push_back(hmm_->device_spec(d).cpus);
    launcher = ProcessLauncher(options_.instance_binary, socket, std::move(cpus), x.config,
                               options_.instance);
  }
  pool_ = std::make_unique<InstancePool>(std::move(launcher), options_.standby_pool);
  const bool supervised = !options_.instance_binary.empty() && options_.restart_crashed;
  loop_ = std::make_unique<ServingLoop>(x.clock, vocab_size_, supervised, options_.check_invariants,
                                        options_.observer, options_.keep_history);
  x.on_phase = [this](const char* name) {
    vmm::MutexLock l(&progress_mu_);
    progress_.phase = name;
  };
  x.loop = loop_.get();
  x.stores = stores_.get();
  x.pool = pool_.get();
  VMM_ASSIGN_OR_RETURN(x.active,
                       x.Prepare(x.SpecFor(devices, x.placement, x.prefix), false, nullptr));
  VMM_RETURN_IF_ERROR(x.active->WarmUp());
  loop_->Start(
      std::make_unique<Scheduler>(x.active.get(), stores_->StoresFor(devices), x.scheduler));
  if (supervised) {
    supervisor_ = std::thread(&Coordinator::Supervise, this);
    pthread_setname_np(supervisor_.native_handle(), "supervise");
  }
  return Status::Ok();
}

Coordinator::~Coordinator() {
  if (loop_ != nullptr) loop_->StopSupervisor();
  if (supervisor_.joinable()) supervisor_.join();  // may finish a restart: serving still runs
  if (loop_ != nullptr) loop_->Stop();
  vmm::MutexLock l(&control_mu_);
  loop_.reset();  // the schedulers and replicas (with their instances)
  // Everything this coordinator created goes back to the HMM, which may outlive it (hmmd): the
  // KV stores with their members, the weights by the prefixes of the configurations it serves.
  std::vector<std::string> prefixes;
  if (ctx_ != nullptr) {
    prefixes.push_back(ctx_->prefix);
    for (int g = 1; g <= ctx_->prefix_generation; ++g) {
      prefixes.push_back(options_.record_namespace + "h" + std::to_string(g) + "/");
    }
    ctx_->active.reset();
  }
  pool_.reset();
  stores_.reset();
  for (const std::string& p : prefixes) {
    auto n = hmm_->ReleaseMatching(p, {});
    if (!n.ok()) {
      std::fprintf(stderr, "coordinator: releasing %s*: %s\n", p.c_str(),
                   n.status().ToString().c_str());
    }
  }
}

double Coordinator::Now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

Status Coordinator::Submit(Request r) { return loop_->Submit(std::move(r)); }
std::vector<RequestResult> Coordinator::TakeFinished() { return loop_->stats().TakeFinished(); }
void Coordinator::Cancel(int64_t id) { loop_->Cancel(id); }
ServingSnapshot Coordinator::Snapshot() const { return loop_->Snapshot(); }

ScaleProgress Coordinator::scale_progress() const {
  vmm::MutexLock l(&progress_mu_);
  return progress_;
}

void Coordinator::BeginProgress(const std::string& method, const std::vector<int>& to) {
  ScaleProgress p;
  p.scaling = true;
  p.method = method;
  p.from_devices = ctx_->ServingDevices();
  p.to_devices = to;
  std::sort(p.to_devices.begin(), p.to_devices.end());
  p.since_s = Now();
  vmm::MutexLock l(&progress_mu_);
  progress_ = std::move(p);
}

void Coordinator::EndProgress() {
  vmm::MutexLock l(&progress_mu_);
  progress_ = ScaleProgress();
}

namespace {

// Ends the progress of a control operation however it returns.
struct ProgressEnd {
  std::function<void()> end;
  ~ProgressEnd() { end(); }
};

}  // namespace
size_t Coordinator::outstanding() const { return loop_->stats().outstanding(); }
std::vector<StepRecord> Coordinator::Timeline() const { return loop_->stats().Timeline(); }
double Coordinator::MaxTokenGap(double t0, double t1) const {
  return loop_->stats().MaxTokenGap(t0, t1);
}
int Coordinator::serving_errors() const { return loop_->stats().errors(); }
int Coordinator::replicas() const { return static_cast<int>(loop_->ReplicaDevices().size()); }

std::vector<int> Coordinator::devices() const {
  vmm::MutexLock l(&control_mu_);
  return ctx_->ServingDevices();
}

pid_t Coordinator::active_pid() const {
  vmm::MutexLock l(&control_mu_);
  return ctx_->active ? ctx_->active->pid() : 0;
}

experts::ExpertPlacement Coordinator::placement() const {
  vmm::MutexLock l(&control_mu_);
  return ctx_->placement;
}

int Coordinator::standby_count() const {
  vmm::MutexLock l(&control_mu_);
  return pool_->standby_count();
}

uint64_t Coordinator::ArenaUsedBytes() const {
  vmm::MutexLock l(&control_mu_);
  return ctx_->ArenaUsedBytes();
}

int Coordinator::restarts() const {
  vmm::MutexLock l(&control_mu_);
  return restarts_;
}

StatusOr<ScaleReport> Coordinator::Scale(std::vector<int> devices, const ScaleOptions& options) {
  vmm::MutexLock l(&control_mu_);
  BeginProgress(options.Name(), devices);
  ProgressEnd end{[this] { EndProgress(); }};
  return emoe::engine::Scale(*ctx_, std::move(devices), options);
}

StatusOr<std::vector<int>> Coordinator::TargetDevices(int count) const {
  vmm::MutexLock l(&control_mu_);
  return emoe::engine::TargetDevices(*ctx_, count);
}

StatusOr<ScaleReport> Coordinator::ScaleTo(int count, const ScaleOptions& options) {
  vmm::MutexLock l(&control_mu_);
  VMM_ASSIGN_OR_RETURN(std::vector<int> to, emoe::engine::TargetDevices(*ctx_, count));
  BeginProgress(options.Name(), to);
  ProgressEnd end{[this] { EndProgress(); }};
  return emoe::engine::Scale(*ctx_, std::move(to), options);
}

StatusOr<ScaleReport> Coordinator::RestartInstance() {
  vmm::MutexLock l(&control_mu_);
  BeginProgress("restart", ctx_->ServingDevices());
  ProgressEnd end{[this] { EndProgress(); }};
  return RestartActive(*ctx_);
}

Status Coordinator::PrepareStandby(const std::vector<int>& devices) {
  vmm::MutexLock l(&control_mu_);
  for (int d : devices) {
    if (d < 0 || d >= hmm_->num_devices()) {
      return Status::InvalidArgument("standby for unknown device " + std::to_string(d));
    }
  }
  return pool_->Prepare(devices);
}

void Coordinator::Supervise() {
  while (loop_->AwaitCrash()) {
    StatusOr<ScaleReport> r = Status::Internal("not restarted");
    {
      vmm::MutexLock l(&control_mu_);
      // A scale event may have replaced the crashed instance meanwhile.
      if (!loop_->crashed()) continue;
      BeginProgress("restart", ctx_->ServingDevices());
      ProgressEnd end{[this] { EndProgress(); }};
      r = RestartActive(*ctx_);
      if (r.ok()) ++restarts_;
    }
    if (!r.ok() && loop_->crashed()) {
      std::fprintf(stderr, "coordinator: restarting the crashed instance failed: %s\n",
                   r.status().ToString().c_str());
      loop_->SupervisorPause(std::chrono::milliseconds(200));
    }
  }
}

}  // namespace emoe::engine
