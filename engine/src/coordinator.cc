#include "engine/coordinator.h"

#include <pthread.h>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "engine/remote_instance.h"
#include "experts/plan.h"

namespace emoe::engine {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A process's proportional set size from /proc/PID/smaps_rollup (0 when unreadable).
uint64_t PssBytesOf(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/smaps_rollup");
  std::string key;
  uint64_t kb;
  std::string unit;
  while (f >> key) {
    if (key == "Pss:" && (f >> kb >> unit)) return kb * 1024;
    f.ignore(1 << 12, '\n');
  }
  return 0;
}

// PSS of this process and its children (the instance processes): pages they share, such as
// the arenas every instance maps, are counted once in the sum.
uint64_t PssBytes() {
  uint64_t sum = PssBytesOf("self");
  const pid_t me = getpid();
  DIR* d = opendir("/proc");
  if (d == nullptr) return sum;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(f, stat);
    const size_t paren = stat.rfind(')');
    char state = 0;
    int ppid = 0;
    if (paren != std::string::npos &&
        std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == me) {
      sum += PssBytesOf(e->d_name);
    }
  }
  closedir(d);
  return sum;
}

// Samples the process PSS on a thread of its own while a scale event runs: reading smaps_rollup
// walks every page table (milliseconds with GiBs mapped), so it never runs on the scaling path.
class PssSampler {
 public:
  explicit PssSampler(std::chrono::milliseconds period)
      : thread_([this, period] {
          std::unique_lock<std::mutex> l(mu_);
          do {
            l.unlock();
            const uint64_t p = PssBytes();
            l.lock();
            if (first_ == 0) first_ = p;
            peak_ = std::max(peak_, p);
          } while (!cv_.wait_for(l, period, [&] { return stop_; }));
        }) {}
  ~PssSampler() { Stop(); }
  // PSS at the first sample (0 until it is taken).
  uint64_t first() {
    std::lock_guard<std::mutex> l(mu_);
    return first_;
  }
  // Stops sampling (after one last sample) and returns the peak.
  uint64_t Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return peak_;
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    peak_ = std::max(peak_, PssBytes());
    return peak_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t peak_ = 0, first_ = 0;
  std::thread thread_;  // last: starts after the fields above exist
};

std::string Devices(const std::vector<int>& d) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < d.size(); ++i) o << (i ? "," : "") << d[i];
  o << ']';
  return o.str();
}

}  // namespace

const char* ScaleMethodName(ScaleMethod m) {
  switch (m) {
    case ScaleMethod::kElastic:
      return "elastic";
    case ScaleMethod::kColdRestart:
      return "cold-restart";
    case ScaleMethod::kExtravagant:
      return "extravagant";
    case ScaleMethod::kColocated:
      return "colocated";
    case ScaleMethod::kHorizontal:
      return "horizontal";
  }
  return "?";
}

StatusOr<ScaleMethod> ParseScaleMethod(const std::string& name) {
  for (ScaleMethod m : {ScaleMethod::kElastic, ScaleMethod::kColdRestart, ScaleMethod::kExtravagant,
                        ScaleMethod::kColocated, ScaleMethod::kHorizontal}) {
    if (name == ScaleMethodName(m)) return m;
  }
  return Status::InvalidArgument("unknown scale method '" + name +
                                 "' (elastic, cold-restart, extravagant, colocated, horizontal)");
}

std::string ScaleOptions::Name() const {
  std::string n = ScaleMethodName(method);
  if (method == ScaleMethod::kElastic) {
    if (!zero_copy) n += "-no-zero-copy";
    if (!p2p) n += "-no-p2p";
    if (!preinit) n += "-no-preinit";
    if (!vm_remap) n += "-no-vm-remap";
  }
  if (drain) n += "-drain";
  return n;
}

std::string ScaleReport::ToJson() const {
  std::ostringstream o;
  o.precision(6);
  o << "{\"name\":\"" << name << "\",\"from\":" << Devices(from_devices)
    << ",\"to\":" << Devices(to_devices) << ",\"command_s\":" << command_s
    << ",\"latency_s\":" << latency_s << ",\"downtime_s\":" << downtime_s << ",\"phases\":{";
  bool first = true;
  for (const auto& [k, v] : phase_s) {
    o << (first ? "" : ",") << "\"" << k << "\":" << v;
    first = false;
  }
  o << "},\"bytes_remapped\":" << bytes_remapped << ",\"bytes_p2p\":" << bytes_p2p
    << ",\"bytes_disk\":" << bytes_disk << ",\"bytes_copied\":" << bytes_copied
    << ",\"arena_before\":" << arena_before << ",\"arena_peak\":" << arena_peak
    << ",\"arena_after\":" << arena_after << ",\"pss_before_bytes\":" << pss_before_bytes
    << ",\"pss_peak_bytes\":" << pss_peak_bytes << ",\"experts_moved\":" << experts_moved
    << ",\"experts_retained\":" << experts_retained << ",\"requests_kept\":" << requests_kept
    << ",\"requests_kv_copied\":" << requests_kv_copied
    << ",\"requests_recomputed\":" << requests_recomputed
    << ",\"requests_drained\":" << requests_drained << ",\"kv_shrunk_bytes\":" << kv_shrunk_bytes
    << "}";
  return o.str();
}

Status CoordinatorOptions::Validate() const {
  VMM_RETURN_IF_ERROR(instance.Validate());
  VMM_RETURN_IF_ERROR(scheduler.Validate());
  if (kv_bytes_per_device == 0) return Status::InvalidArgument("KV bytes per device must be > 0");
  if (block_tokens < 1) return Status::InvalidArgument("block_tokens must be >= 1");
  if (standby_pool < 0) return Status::InvalidArgument("standby_pool must be >= 0");
  return Status::Ok();
}

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
  c->checkpoint_ = &checkpoint;
  c->config_ = config;
  c->options_ = options;
  c->specs_ = ExpectedTensors(config);
  c->start_ = Clock::now();
  VMM_ASSIGN_OR_RETURN(c->placement_, experts::InitialPlacement(config.num_hidden_layers,
                                                                config.num_experts, devices));
  c->prefix_ = options.record_namespace + "g0/";
  const hbm::PlacementTable all =
      c->TableFor(devices, c->placement_, [](const TensorSpec&, int) { return true; });
  VMM_RETURN_IF_ERROR(c->LoadFromDisk(all, c->prefix_).status());
  for (int d : devices) {
    VMM_ASSIGN_OR_RETURN(c->stores_[d],
                         kv::KvStore::Create(*hmm, d, KvGeometryFor(config, options.block_tokens),
                                             options.kv_bytes_per_device));
  }
  if (!options.instance_binary.empty() && !hmm->socket_path().empty()) {
    c->hmm_socket_ = hmm->socket_path();  // hmmd serves the instances
  } else if (!options.instance_binary.empty()) {
    // Instances run in processes of their own and attach through the HMM's socket.
    hbm::ServerOptions so;
    so.socket_path = options.hmm_socket;
    if (so.socket_path.empty()) {
      static std::atomic<int> serial{0};
      const char* tmp = std::getenv("TMPDIR");
      so.socket_path = std::string(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") + "/emoe-hmm-" +
                       std::to_string(getpid()) + "-" + std::to_string(serial++) + ".sock";
    }
    c->hmm_server_ = std::make_unique<hbm::HmmServer>(hmm->local(), so);
    VMM_RETURN_IF_ERROR(c->hmm_server_->Start());
    c->hmm_socket_ = so.socket_path;
  }
  VMM_ASSIGN_OR_RETURN(c->active_, c->BootInstance(devices));
  DeviceWeightsOptions wo;
  wo.prefix = c->prefix_;
  VMM_RETURN_IF_ERROR(c->AttachInstance(c->active_.get(), devices, c->placement_, wo, nullptr));
  VMM_RETURN_IF_ERROR(c->active_->WarmUp());
  std::vector<kv::KvStore*> stores;
  for (int d : devices) stores.push_back(c->stores_[d].get());
  SchedulerOptions so = options.scheduler;
  Coordinator* self = c.get();
  so.clock = [self] { return self->Now(); };
  c->sched_ = std::make_unique<Scheduler>(c->active_.get(), stores, so);
  c->supervised_ = !options.instance_binary.empty() && options.restart_crashed;
  c->server_ = std::thread(&Coordinator::ServeLoop, c.get());
  pthread_setname_np(c->server_.native_handle(), "serve");
  if (c->supervised_) {
    c->supervisor_ = std::thread(&Coordinator::Supervise, c.get());
    pthread_setname_np(c->supervisor_.native_handle(), "supervise");
  }
  return c;
}

Coordinator::~Coordinator() {
  {
    std::lock_guard<std::mutex> l(mu_);
    supervisor_stop_ = true;
  }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();  // may finish a restart: serving still runs
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (server_.joinable()) server_.join();
  sched_.reset();
  // Everything this coordinator created goes back to the HMM, which may outlive it (hmmd): the
  // KV stores with their members, the weights by the prefixes of the configurations it serves.
  std::vector<std::string> prefixes = {prefix_};
  for (const auto& r : replicas_) {
    if (!r->prefix.empty()) prefixes.push_back(r->prefix);
  }
  replicas_.clear();
  active_.reset();
  standby_.clear();
  stores_.clear();
  for (const std::string& p : prefixes) {
    if (auto n = hmm_->ReleaseMatching(p, {}); !n.ok()) {
      std::fprintf(stderr, "coordinator: releasing %s*: %s\n", p.c_str(),
                   n.status().ToString().c_str());
    }
  }
}

double Coordinator::Now() const { return Since(start_); }

Status Coordinator::Submit(Request r) {
  if (r.arrival_s == 0) r.arrival_s = Now();
  if (r.prompt.empty() || r.max_new_tokens < 1) {
    return Status::InvalidArgument("request " + std::to_string(r.id) +
                                   ": empty prompt or max_new_tokens < 1");
  }
  for (int32_t t : r.prompt) {
    if (t < 0 || t >= config_.vocab_size) {
      return Status::InvalidArgument("request " + std::to_string(r.id) + ": token " +
                                     std::to_string(t) + " outside the vocabulary");
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    inbox_.push_back(std::move(r));
    ++outstanding_;
  }
  cv_.notify_all();
  return Status::Ok();
}

std::vector<RequestResult> Coordinator::TakeFinished() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<RequestResult> out;
  out.swap(finished_);
  return out;
}

size_t Coordinator::outstanding() const {
  std::lock_guard<std::mutex> l(mu_);
  return outstanding_;
}

std::vector<StepRecord> Coordinator::Timeline() const {
  std::lock_guard<std::mutex> l(mu_);
  return timeline_;
}

double Coordinator::MaxTokenGap(double t0, double t1) const {
  std::lock_guard<std::mutex> l(mu_);
  double g = 0;
  for (const auto& [t, gap] : gaps_) {
    if (t >= t0 && t <= t1) g = std::max(g, gap);
  }
  return g;
}

int Coordinator::serving_errors() const {
  std::lock_guard<std::mutex> l(mu_);
  return serving_errors_;
}

void Coordinator::ServeLoop() {
  for (;;) {
    std::deque<Request> in;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (task_ != nullptr) {
        (*task_)();
        task_ = nullptr;
        done_cv_.notify_all();
      }
      if (stop_) return;
      if (crashed_) {  // nothing can run until the supervisor has restarted the instance
        cv_.wait_for(l, std::chrono::milliseconds(10));
        continue;
      }
      bool idle = inbox_.empty() && sched_->idle() && task_ == nullptr;
      for (const auto& r : replicas_) idle = idle && r->sched->idle();
      if (idle) {
        cv_.wait_for(l, std::chrono::milliseconds(50));
        continue;
      }
      in.swap(inbox_);
    }
    std::vector<RequestResult> done;
    for (Request& r : in) {
      Status s = Route()->Submit(r);
      if (!s.ok()) {
        RequestResult res;
        res.id = r.id;
        res.arrival_s = r.arrival_s;
        res.finish_s = Now();
        res.finish_reason = "rejected: " + s.ToString();
        done.push_back(res);
      }
    }
    std::vector<std::pair<int64_t, double>> tokens;
    int replica_tokens = 0;
    auto n = StepAll(&tokens, &done, &replica_tokens);
    std::lock_guard<std::mutex> l(mu_);
    if (!n.ok()) {
      ++serving_errors_;
      if (n.status().code() == vmm::StatusCode::kUnavailable && sched_->instance()->pid() != 0 &&
          supervised_) {
        crashed_ = true;  // the instance process is gone: the supervisor restarts it
        cv_.notify_all();
        std::fprintf(stderr, "coordinator: %s\n", n.status().ToString().c_str());
      }
    }
    outstanding_ -= done.size();
    for (auto& r : done) {
      last_token_.erase(r.id);
      finished_.push_back(std::move(r));
    }
    if (n.ok() && *n > 0)
      timeline_.push_back({Now(), static_cast<int>(tokens.size()), replica_tokens, generation_});
    std::sort(tokens.begin(), tokens.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    for (auto [id, t] : tokens) {
      auto it = last_token_.find(id);
      if (it != last_token_.end()) gaps_.emplace_back(t, t - it->second);
      last_token_[id] = t;
    }
  }
}

Scheduler* Coordinator::Route() {
  Scheduler* best = sched_.get();
  size_t load = best->running() + best->waiting();
  for (const auto& r : replicas_) {
    const size_t l = r->sched->running() + r->sched->waiting();
    if (!r->retiring && l < load) {
      best = r->sched.get();
      load = l;
    }
  }
  return best;
}

StatusOr<int> Coordinator::StepAll(std::vector<std::pair<int64_t, double>>* tokens,
                                   std::vector<RequestResult>* done, int* replica_tokens) {
  // Replicas on devices of their own step at the same time as the primary (each instance has
  // its own threads and KV stores); the others (a draining old instance shares the primary's KV
  // stores) step after it.
  struct Job {
    Replica* replica = nullptr;  // null: the primary
    Scheduler* sched;
    std::vector<std::pair<int64_t, double>> tokens;
    StatusOr<int> n = 0;
  };
  std::vector<Job> jobs(1);
  jobs[0].sched = sched_.get();
  for (const auto& r : replicas_) {
    if (!r->sched->idle()) jobs.push_back({r.get(), r->sched.get(), {}, 0});
  }
  auto run = [this](Job& j) {
    j.n = j.sched->Step(Now(), [&](int64_t id, int32_t) { j.tokens.emplace_back(id, Now()); });
  };
  std::vector<std::thread> side;
  for (size_t i = 1; i < jobs.size(); ++i) {
    if (jobs[i].replica->concurrent) side.emplace_back(run, std::ref(jobs[i]));
  }
  run(jobs[0]);
  for (std::thread& t : side) t.join();
  for (size_t i = 1; i < jobs.size(); ++i) {
    if (!jobs[i].replica->concurrent) run(jobs[i]);
  }
  int stepped = 0;
  for (Job& j : jobs) {
    for (auto& r : j.sched->TakeFinished()) done->push_back(std::move(r));
    tokens->insert(tokens->end(), j.tokens.begin(), j.tokens.end());
    if (j.replica != nullptr) *replica_tokens += static_cast<int>(j.tokens.size());
    if (j.n.ok()) {
      stepped += *j.n;
      continue;
    }
    if (j.replica == nullptr) return j.n.status();
    // A replica that cannot step (its process died): its requests are recomputed on the
    // primary, and it gets nothing new; a later scale event removes it.
    std::fprintf(stderr,
                 "coordinator: replica on %s failed, its requests move to the primary: %s\n",
                 Devices(j.replica->devices).c_str(), j.n.status().ToString().c_str());
    std::lock_guard<std::mutex> l(mu_);
    ++serving_errors_;
    j.replica->retiring = true;
    j.replica->failed = true;
    j.sched->PreemptAll();
    j.sched->HandOverWaiting(sched_.get());
  }
  return stepped;
}

void Coordinator::OnServingThread(const std::function<void()>& fn) {
  std::unique_lock<std::mutex> l(mu_);
  task_ = &fn;
  cv_.notify_all();
  done_cv_.wait(l, [&] { return task_ == nullptr; });
}

std::vector<int> Coordinator::devices() const {
  std::vector<int> d = active_->devices();
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& r : replicas_) {
    if (!r->retiring) d.insert(d.end(), r->devices.begin(), r->devices.end());
  }
  std::sort(d.begin(), d.end());
  return d;
}

int Coordinator::replicas() const {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const auto& r : replicas_) n += r->retiring ? 0 : 1;
  return n;
}

int Coordinator::standby_count() const { return static_cast<int>(standby_.size()); }

uint64_t Coordinator::ArenaUsedBytes() const {
  auto stats = hmm_->Stats();
  if (!stats.ok()) {
    std::fprintf(stderr, "coordinator: HMM statistics: %s\n", stats.status().ToString().c_str());
    return 0;
  }
  uint64_t used = 0;
  for (const hbm::DeviceStats& s : *stats) used += s.used_bytes;
  return used;
}

void Coordinator::Sample(ScaleReport* r) const {
  r->arena_peak = std::max(r->arena_peak, ArenaUsedBytes());
}

std::vector<std::vector<int>> Coordinator::CpusOf(const std::vector<int>& devices) const {
  std::vector<std::vector<int>> cpus;
  for (int d : devices) cpus.push_back(hmm_->device_spec(d).cpus);
  return cpus;
}

Status Coordinator::PrepareStandby(const std::vector<int>& devices) {
  std::lock_guard<std::mutex> control(control_mu_);
  if (options_.standby_pool == 0) return Status::Ok();
  for (int d : devices) {
    if (d < 0 || d >= hmm_->num_devices()) {
      return Status::InvalidArgument("standby for unknown device " + std::to_string(d));
    }
  }
  const auto cpus = CpusOf(devices);
  for (const auto& [key, inst] : standby_) {
    if (key == devices) return Status::Ok();
  }
  VMM_ASSIGN_OR_RETURN(auto inst, BootInstance(devices));
  standby_.emplace_front(devices, std::move(inst));
  while (static_cast<int>(standby_.size()) > options_.standby_pool) standby_.pop_back();
  return Status::Ok();
}

StatusOr<std::unique_ptr<Executor>> Coordinator::BootInstance(const std::vector<int>& devices) {
  if (options_.instance_binary.empty()) {
    VMM_ASSIGN_OR_RETURN(auto inst, Instance::Boot(config_, CpusOf(devices), options_.instance));
    return std::unique_ptr<Executor>(std::move(inst));
  }
  VMM_ASSIGN_OR_RETURN(auto inst, RemoteInstance::Launch(options_.instance_binary, config_,
                                                         CpusOf(devices), options_.instance));
  return std::unique_ptr<Executor>(std::move(inst));
}

Status Coordinator::AttachInstance(Executor* inst, const std::vector<int>& devices,
                                   const experts::ExpertPlacement& placement,
                                   DeviceWeightsOptions wo, ScaleReport* rep) {
  if (auto* remote = dynamic_cast<RemoteInstance*>(inst)) {
    if (wo.private_copy || wo.experts != ExpertView::kSlots) {
      return Status::FailedPrecondition(
          "the no-zero-copy and naive-copy ablations copy weights into the instance's own "
          "device memory, which only in-process instances can allocate (run without instance "
          "processes)");
    }
    RemoteAttachSpec spec;
    spec.hmm_socket = hmm_socket_;
    spec.devices = devices;
    spec.placement = placement;
    spec.prefix = wo.prefix;
    for (int d : devices) {
      auto it = stores_.find(d);
      if (it == stores_.end()) return Status::Internal("attach before the KV store of a device");
      spec.stores.push_back(it->second.get());
    }
    RemoteAttachStats st;
    VMM_RETURN_IF_ERROR(remote->Attach(spec, &st));
    if (rep != nullptr) rep->bytes_remapped += st.bytes_mapped;
    return Status::Ok();
  }
  if (hmm_->local() == nullptr) {
    return Status::FailedPrecondition("an in-process instance needs the HMM in this process");
  }
  std::vector<std::unique_ptr<WeightSource>> sources;
  for (int d : devices) {
    DeviceWeightsStats ws;
    VMM_ASSIGN_OR_RETURN(auto w,
                         DeviceWeights::Build(*hmm_->local(), config_, d, placement, wo, &ws));
    if (rep != nullptr) {
      rep->bytes_remapped += ws.bytes_mapped;
      rep->bytes_copied += ws.bytes_copied;
    }
    sources.push_back(std::move(w));
  }
  return static_cast<Instance*>(inst)->Attach(devices, std::move(sources), placement);
}

StatusOr<std::unique_ptr<Executor>> Coordinator::TakeStandby(const std::vector<int>& devices,
                                                             bool allowed) {
  if (allowed) {
    for (auto it = standby_.begin(); it != standby_.end(); ++it) {
      if (it->first == devices) {
        auto inst = std::move(it->second);
        standby_.erase(it);
        return inst;
      }
    }
  }
  return BootInstance(devices);
}

hbm::PlacementTable Coordinator::TableFor(
    const std::vector<int>& devices, const experts::ExpertPlacement& placement,
    const std::function<bool(const TensorSpec&, int)>& want) const {
  hbm::PlacementTable table;
  for (const TensorSpec& s : specs_) {
    hbm::PlacementDecision d;
    if (s.expert >= 0) {
      const int owner = placement.owner[s.layer][s.expert];
      if (want(s, owner)) {
        d.usage = hbm::Usage::kExperts;
        d.devices = {owner};
        d.group = "layer" + std::to_string(s.layer) + ".expert" + std::to_string(s.expert);
      }
    } else {
      for (int dev : devices) {
        if (want(s, dev)) d.devices.push_back(dev);
      }
    }
    if (!d.devices.empty()) table.emplace(s.name, std::move(d));
  }
  return table;
}

StatusOr<hbm::LoadReport> Coordinator::LoadFromDisk(const hbm::PlacementTable& table,
                                                    const std::string& prefix) {
  return hmm_->Load(checkpoint_->path, table, prefix);
}

StatusOr<std::map<int, uint64_t>> Coordinator::FootprintOf(const hbm::PlacementTable& table) {
  VMM_ASSIGN_OR_RETURN(const std::vector<hbm::DeviceStats> stats, hmm_->Stats());
  VMM_ASSIGN_OR_RETURN(hbm::PlacementFn fn,
                       hbm::PlacementFromTable(*checkpoint_, table, hmm_->num_devices()));
  return hbm::LoadFootprint(*checkpoint_, fn, [&](int d, hbm::Usage u) {
    return stats.at(d).usage[static_cast<int>(u)].page_size;
  });
}

Status Coordinator::MakeRoom(const std::map<int, uint64_t>& need, const std::vector<int>& serving,
                             std::map<int, uint64_t>* room, ScaleReport* rep) {
  VMM_ASSIGN_OR_RETURN(const std::vector<hbm::DeviceStats> stats, hmm_->Stats());
  for (const auto& [d, bytes] : need) {
    const hbm::DeviceStats& st = stats.at(d);
    const uint64_t free = st.capacity_bytes > st.used_bytes ? st.capacity_bytes - st.used_bytes : 0;
    if (bytes <= free) continue;
    const uint64_t short_by = bytes - free;
    auto it = stores_.find(d);
    uint64_t can_give = 0;
    int64_t keep_blocks = 0;
    if (it != stores_.end()) {
      const uint64_t bb = it->second->geometry().block_bytes();
      const int64_t have = it->second->pool().num_blocks();
      const int64_t give = static_cast<int64_t>((short_by + bb - 1) / bb);
      const int64_t floor = it->second->pool().min_blocks();
      can_give = static_cast<uint64_t>(have - floor) * bb;
      keep_blocks = have - give;
      if (keep_blocks >= floor) {
        const uint64_t before = it->second->size_bytes();
        Status s = it->second->Resize(static_cast<uint64_t>(keep_blocks) * bb);
        if (s.ok()) {
          // GrowKv restores the configured size (or the former one, if larger).
          room->emplace(d, std::max(before, options_.kv_bytes_per_device));
          rep->kv_shrunk_bytes += before - it->second->size_bytes();
          continue;
        }
        std::fprintf(stderr, "coordinator: device %d: KV could not shrink: %s\n", d,
                     s.ToString().c_str());
      }
    }
    GrowKv(room);
    return Status::ResourceExhausted(
        "scale to " + Devices(rep->to_devices) + " refused: device " + std::to_string(d) +
        " needs " + std::to_string(bytes >> 20) + " MiB but has " + std::to_string(free >> 20) +
        " MiB of its " + std::to_string(st.capacity_bytes >> 20) + " MiB free, and its KV store " +
        (it == stores_.end() ? std::string("is not there to shrink")
                             : "can give back only " + std::to_string(can_give >> 20) +
                                   " MiB (free blocks past the highest one in use)") +
        "; serving continues on " + Devices(serving));
  }
  return Status::Ok();
}

void Coordinator::GrowKv(std::map<int, uint64_t>* room) {
  if (room->empty()) return;
  auto stats = hmm_->Stats();
  for (const auto& [d, bytes] : *room) {
    auto it = stores_.find(d);
    if (it == stores_.end() || it->second->size_bytes() >= bytes) continue;
    kv::KvStore& st = *it->second;
    Status s = st.Resize(bytes);
    if (!s.ok() && stats.ok()) {
      // As far as the device has room (a private copy of the weights may hold the rest).
      const hbm::DeviceStats& ds = stats->at(d);
      const uint64_t free =
          ds.capacity_bytes > ds.used_bytes ? ds.capacity_bytes - ds.used_bytes : 0;
      const uint64_t bb = st.geometry().block_bytes();
      const uint64_t can = std::min(bytes, (st.size_bytes() + free) / bb * bb);
      if (can > st.size_bytes()) (void)st.Resize(can);
    }
    if (st.size_bytes() < bytes) {
      std::fprintf(
          stderr, "coordinator: device %d: KV store at %llu MiB, below its %llu MiB (%s)\n", d,
          static_cast<unsigned long long>(st.size_bytes() >> 20),
          static_cast<unsigned long long>(bytes >> 20), s.ok() ? "" : s.ToString().c_str());
    }
  }
  room->clear();
}

StatusOr<ScaleReport> Coordinator::Scale(std::vector<int> devices, const ScaleOptions& options) {
  std::lock_guard<std::mutex> control(control_mu_);
  return ScaleLocked(std::move(devices), options);
}

StatusOr<std::vector<int>> Coordinator::TargetDevices(int count) const {
  const int n = hmm_->num_devices();
  if (count < 1 || count > n) {
    return Status::InvalidArgument("scale to " + std::to_string(count) +
                                   " devices: the HMM has 1.." + std::to_string(n));
  }
  std::vector<int> order = active_->devices();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& r : replicas_) {
      if (!r->retiring) order.insert(order.end(), r->devices.begin(), r->devices.end());
    }
  }
  std::vector<int> to;
  if (count <= static_cast<int>(order.size())) {
    to.assign(order.begin(), order.begin() + count);
  } else {
    to = order;
    for (int d = 0; d < n && static_cast<int>(to.size()) < count; ++d) {
      if (std::find(order.begin(), order.end(), d) == order.end()) to.push_back(d);
    }
  }
  std::sort(to.begin(), to.end());
  return to;
}

StatusOr<ScaleReport> Coordinator::ScaleTo(int count, const ScaleOptions& options) {
  std::lock_guard<std::mutex> control(control_mu_);
  VMM_ASSIGN_OR_RETURN(std::vector<int> to, TargetDevices(count));
  return ScaleLocked(std::move(to), options);
}

StatusOr<ScaleReport> Coordinator::ScaleLocked(std::vector<int> devices,
                                               const ScaleOptions& options) {
  std::sort(devices.begin(), devices.end());
  if (devices.empty()) {
    return Status::InvalidArgument("scale to no devices: an instance needs at least one");
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i] < 0 || devices[i] >= hmm_->num_devices() ||
        (i > 0 && devices[i] == devices[i - 1])) {
      return Status::InvalidArgument("scale to " + Devices(devices) + ": device " +
                                     std::to_string(devices[i]) + " is unknown or repeated (" +
                                     std::to_string(hmm_->num_devices()) + " devices)");
    }
  }
  // A replica whose instance failed has handed its requests to the primary: free it first.
  bool any_failed = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& r : replicas_) any_failed = any_failed || r->failed;
  }
  if (any_failed) {
    std::vector<std::pair<std::string, std::vector<int>>> failed;
    OnServingThread([&] {
      for (auto it = replicas_.begin(); it != replicas_.end();) {
        if ((*it)->failed && (*it)->sched->idle()) {
          failed.emplace_back((*it)->prefix, (*it)->devices);
          it = replicas_.erase(it);
        } else {
          ++it;
        }
      }
    });
    for (const auto& [prefix, devs] : failed) ReleaseReplicaMemory(prefix, devs);
  }
  if (options.method == ScaleMethod::kHorizontal)
    return ScaleHorizontal(std::move(devices), options);
  if (const int n = replicas(); n > 0) {
    return Status::FailedPrecondition(
        "scale to " + Devices(devices) + " with " + options.Name() +
        " refused: " + std::to_string(n) + " horizontal replica(s) serve besides the primary on " +
        Devices(active_->devices()) + "; remove them first (horizontal, to " +
        Devices(active_->devices()) + ")");
  }
  if (devices == active_->devices() && options.method == ScaleMethod::kElastic) {
    return Status::InvalidArgument("scale to " + Devices(devices) + ": already serving there");
  }
  if (options.drain && options.method == ScaleMethod::kColdRestart) {
    return Status::InvalidArgument(
        "scale to " + Devices(devices) +
        ": cold-restart cannot drain (the old instance stops before the new one starts)");
  }
  if (options.method == ScaleMethod::kElastic) return ScaleElastic(std::move(devices), options);
  return ScaleFromDisk(std::move(devices), options);
}

// Everything a failed event must undo.
struct Coordinator::Switch {
  std::vector<std::pair<std::string, int>> records;  // HMM records created
  std::vector<int> new_stores;                       // devices whose KV store was created
};

// The measurements every scale event takes: the clock, phases, arena peak and PSS.
struct Coordinator::Event {
  Event(Coordinator* c, const ScaleOptions& o, const std::vector<int>& to)
      : coord(c), fail_after(o.fail_after), pss(std::chrono::milliseconds(20)) {
    rep.name = o.Name();
    rep.from_devices = c->devices();
    rep.to_devices = to;
    rep.command_s = c->Now();
    rep.arena_before = c->ArenaUsedBytes();
    c->Sample(&rep);
  }
  double Since0() const { return Since(t0); }
  // Ends the phase `name` (its time is from the end of the previous one) and samples memory.
  void Phase(const char* name) {
    rep.phase_s[name] = Since(t);
    t = Clock::now();
    coord->Sample(&rep);
  }
  // The failure ScaleOptions::fail_after injects after `name`, or OK.
  Status Injected(const char* name) const {
    if (fail_after == name) return Status::Internal(std::string("injected failure after ") + name);
    return Status::Ok();
  }
  ScaleReport Finish() {
    rep.arena_after = coord->ArenaUsedBytes();
    rep.pss_peak_bytes = pss.Stop();
    rep.pss_before_bytes = pss.first();
    return rep;
  }

  Coordinator* coord;
  std::string fail_after;
  ScaleReport rep;
  const Clock::time_point t0 = Clock::now();
  Clock::time_point t = t0;
  PssSampler pss;
};

StatusOr<ScaleReport> Coordinator::ScaleElastic(std::vector<int> devices, const ScaleOptions& o) {
  Event ev(this, o, devices);
  ScaleReport& rep = ev.rep;
  auto phase = [&](const char* name) { ev.Phase(name); };
  auto injected = [&](const char* name) { return ev.Injected(name); };
  // 1. Plan.
  VMM_ASSIGN_OR_RETURN(experts::ExpertPlacement to, experts::Rebalance(placement_, devices));
  VMM_ASSIGN_OR_RETURN(experts::RedistributionPlan plan,
                       experts::PlanRedistribution(placement_, to));
  VMM_RETURN_IF_ERROR(plan.Validate());
  rep.experts_moved = plan.moved_count();
  rep.experts_retained = plan.retained_count();
  const std::vector<int> added = plan.added_devices(), removed = plan.removed_devices();
  std::map<std::pair<int, int>, std::vector<std::string>> expert_names;
  std::vector<std::string> dense;
  for (const TensorSpec& s : specs_) {
    if (s.expert >= 0) {
      expert_names[{s.layer, s.expert}].push_back(prefix_ + s.name);
    } else {
      dense.push_back(prefix_ + s.name);
    }
  }
  // Can it be met? Bytes each device must receive, against what its arenas have free.
  std::map<int, uint64_t> kv_room;  // KV shrunk ahead of time (MakeRoom), grown back at the end
  {
    std::map<int, uint64_t> need_w, need_e;
    const int peer = rep.from_devices[0];
    uint64_t dense_bytes = 0;  // what each added device receives (asked once: one request each)
    if (!added.empty() || !o.zero_copy) {
      for (const std::string& n : dense) {
        VMM_ASSIGN_OR_RETURN(hbm::TensorMeta r, hmm_->Find(n, peer));
        dense_bytes += r.size_bytes + hbm::kDirectAlignment;
      }
    }
    for (int d : added) need_w[d] = dense_bytes;
    for (const experts::ExpertMove& m : plan.moves) {
      VMM_ASSIGN_OR_RETURN(hbm::TensorMeta r,
                           hmm_->Find(expert_names[{m.layer, m.expert}][0], m.from));
      need_e[m.to] += r.extent_bytes;
    }
    VMM_ASSIGN_OR_RETURN(const std::vector<hbm::DeviceStats> stats, hmm_->Stats());
    for (int d : devices) {
      const hbm::DeviceStats& st = stats.at(d);
      const auto& w = st.usage[static_cast<int>(hbm::Usage::kWeights)];
      const auto& e = st.usage[static_cast<int>(hbm::Usage::kExperts)];
      const auto& k = st.usage[static_cast<int>(hbm::Usage::kKv)];
      auto refuse = [&](const char* what, uint64_t need, uint64_t free) {
        return Status::ResourceExhausted(
            "scale to " + Devices(devices) + " refused: device " + std::to_string(d) + " needs " +
            std::to_string(need >> 20) + " MiB more " + what + " memory but has " +
            std::to_string(free >> 20) + " MiB free; serving continues on " +
            Devices(rep.from_devices));
      };
      if (need_w[d] > w.free_bytes) return refuse("weight", need_w[d], w.free_bytes);
      if (need_e[d] > e.free_bytes) return refuse("expert", need_e[d], e.free_bytes);
      if (!stores_.count(d) && options_.kv_bytes_per_device > k.free_bytes) {
        return refuse("KV", options_.kv_bytes_per_device, k.free_bytes);
      }
    }
    // Together against the devices' capacity: what they receive, new KV stores, and the
    // ablations' private buffers (every local expert copied; no zero-copy: the dense weights too).
    uint64_t expert_bytes = 0;
    if (!o.zero_copy || !o.vm_remap) {
      VMM_ASSIGN_OR_RETURN(hbm::TensorMeta r,
                           hmm_->Find(expert_names[{0, 0}][0], placement_.owner[0][0]));
      expert_bytes = r.extent_bytes;
    }
    std::map<int, uint64_t> need;
    for (int d : devices) {
      auto paged = [&](uint64_t b, hbm::Usage u) {
        const uint64_t page =
            std::max<uint64_t>(stats.at(d).usage[static_cast<int>(u)].page_size, 1);
        return (b + page - 1) / page * page;
      };
      need[d] = need_w[d] + need_e[d] + (stores_.count(d) ? 0 : options_.kv_bytes_per_device);
      if (!o.zero_copy) need[d] += paged(dense_bytes, hbm::Usage::kWeights);
      if (!o.zero_copy || !o.vm_remap) {
        for (int l = 0; l < config_.num_hidden_layers; ++l) {
          need[d] += paged(to.LocalExperts(l, d).size() * expert_bytes, hbm::Usage::kExperts);
        }
      }
    }
    VMM_RETURN_IF_ERROR(MakeRoom(need, rep.from_devices, &kv_room, &rep));
  }
  phase("plan");
  if (Status s = injected("plan"); !s.ok()) {
    GrowKv(&kv_room);
    return s;
  }
  // From here on, failures roll back what this event created.
  Switch undo;
  std::unique_ptr<Executor> next;
  auto rollback = [&](Status s) -> Status {
    next.reset();
    (void)hmm_->Release(undo.records);
    for (int d : undo.new_stores) stores_.erase(d);
    GrowKv(&kv_room);
    return s.Annotate("scale to " + Devices(devices) + " rolled back; serving continues on " +
                      Devices(rep.from_devices));
  };
  // 2. Memory, concurrent with serving.
  {
    const int peer = rep.from_devices[0];
    Status s;
    if (o.p2p) {
      for (int d : added) {
        if (!s.ok()) break;
        auto b = hmm_->CopyGroup(dense, peer, d, hbm::Usage::kWeights);
        if (b.ok()) {
          rep.bytes_p2p += *b;
          for (const std::string& n : dense) undo.records.emplace_back(n, d);
        } else {
          s = b.status();
        }
      }
      for (const experts::ExpertMove& m : plan.moves) {
        if (!s.ok()) break;
        const auto& names = expert_names[{m.layer, m.expert}];
        auto b = hmm_->CopyGroup(names, m.from, m.to, hbm::Usage::kExperts);
        if (b.ok()) {
          rep.bytes_p2p += *b;
          for (const std::string& n : names) undo.records.emplace_back(n, m.to);
        } else {
          s = b.status();
        }
      }
    } else {
      std::set<std::pair<int, int>> incoming;
      for (const experts::ExpertMove& m : plan.moves) incoming.insert({m.layer, m.expert});
      std::set<int> add(added.begin(), added.end());
      auto want = [&](const TensorSpec& sp, int dev) {
        return sp.expert >= 0 ? incoming.count({sp.layer, sp.expert}) > 0 : add.count(dev) > 0;
      };
      auto r = LoadFromDisk(TableFor(added, to, want), prefix_);
      if (r.ok()) {
        rep.bytes_disk += r->bytes_from_disk;
        for (const TensorSpec& sp : specs_) {
          if (sp.expert >= 0 && incoming.count({sp.layer, sp.expert})) {
            undo.records.emplace_back(prefix_ + sp.name, to.owner[sp.layer][sp.expert]);
          } else if (sp.expert < 0) {
            for (int d : added) undo.records.emplace_back(prefix_ + sp.name, d);
          }
        }
      } else {
        s = r.status();
      }
    }
    for (int d : added) {
      if (!s.ok()) break;
      auto st = kv::KvStore::Create(*hmm_, d, KvGeometryFor(config_, options_.block_tokens),
                                    options_.kv_bytes_per_device);
      if (st.ok()) {
        stores_[d] = std::move(*st);
        undo.new_stores.push_back(d);
      } else {
        s = st.status();
      }
    }
    if (s.ok()) s = injected("memory");
    phase("memory");
    if (!s.ok()) return rollback(s);
  }
  // 3. The new instance attaches.
  {
    auto inst = TakeStandby(devices, o.preinit);
    if (!inst.ok()) return rollback(inst.status());
    next = std::move(*inst);
    DeviceWeightsOptions wo;
    wo.prefix = prefix_;
    wo.private_copy = !o.zero_copy;
    wo.experts = o.vm_remap ? ExpertView::kSlots : ExpertView::kNaiveCopy;
    Status s = AttachInstance(next.get(), devices, to, wo, &rep);
    if (s.ok()) s = injected("instance");
    phase("instance");
    if (!s.ok()) return rollback(s);
  }
  // 4. Warm-up.
  {
    Status s = next->WarmUp();
    if (s.ok()) s = injected("warmup");
    phase("warmup");
    if (!s.ok()) return rollback(s);
  }
  // 5. Switchover between two steps.
  Replica* drained = nullptr;
  if (Status st = SwitchServing(next.get(), devices, o.drain, &rep, &drained); !st.ok()) {
    return rollback(st);
  }
  rep.latency_s = ev.Since0();
  phase("switch");
  // 6. Drain (an option): the old instance finishes its running requests, then exits.
  std::swap(active_, next);
  if (drained != nullptr) {
    OnServingThread([&] { drained->inst = std::move(next); });
    Retire(drained);
    phase("drain");
  }
  // 7. Cleanup: the old instance exits, outgoing experts and leaving devices are freed.
  next.reset();
  std::vector<std::pair<std::string, int>> outgoing;
  for (const experts::ExpertMove& m : plan.moves) {
    for (const std::string& n : expert_names[{m.layer, m.expert}]) outgoing.emplace_back(n, m.from);
  }
  (void)hmm_->Release(outgoing);
  if (!removed.empty()) (void)hmm_->ReleaseMatching(options_.record_namespace, removed);
  for (int d : removed) stores_.erase(d);
  GrowKv(&kv_room);
  placement_ = to;
  phase("cleanup");
  return ev.Finish();
}

StatusOr<ScaleReport> Coordinator::ScaleFromDisk(std::vector<int> devices, const ScaleOptions& o) {
  Event ev(this, o, devices);
  ScaleReport& rep = ev.rep;
  auto phase = [&](const char* name) { ev.Phase(name); };
  if (o.method == ScaleMethod::kExtravagant) {
    // As many fresh devices as asked for, none of them serving now.
    std::vector<int> fresh;
    for (int d = 0; d < hmm_->num_devices() && fresh.size() < devices.size(); ++d) {
      if (active_->rank_of_device(d) < 0) fresh.push_back(d);
    }
    if (fresh.size() < devices.size()) {
      return Status::ResourceExhausted("extravagant scaling to " + std::to_string(devices.size()) +
                                       " devices needs that many "
                                       "fresh devices besides the " +
                                       std::to_string(rep.from_devices.size()) +
                                       " serving; the HMM has " +
                                       std::to_string(hmm_->num_devices()));
    }
    devices = fresh;
  }
  rep.to_devices = devices;
  VMM_ASSIGN_OR_RETURN(
      experts::ExpertPlacement to,
      experts::InitialPlacement(config_.num_hidden_layers, config_.num_experts, devices));
  const std::string old_prefix = prefix_;
  const std::string new_prefix =
      options_.record_namespace + "g" + std::to_string(++prefix_generation_) + "/";
  const std::vector<int> old_devices = rep.from_devices;
  auto geometry = KvGeometryFor(config_, options_.block_tokens);
  auto ensure_stores = [&]() -> Status {
    for (int d : devices) {
      if (stores_.count(d)) continue;
      VMM_ASSIGN_OR_RETURN(stores_[d],
                           kv::KvStore::Create(*hmm_, d, geometry, options_.kv_bytes_per_device));
    }
    return Status::Ok();
  };
  auto all = [](const TensorSpec&, int) { return true; };
  phase("plan");
  std::unique_ptr<Executor> next;
  if (o.method == ScaleMethod::kColdRestart) {
    // Stop serving; everything of the old configuration goes; load; start.
    const auto stop_t = Clock::now();
    std::mutex m;
    std::condition_variable cv;
    bool resume = false, paused = false;
    std::thread pauser([&] {
      OnServingThread([&] {
        sched_->PreemptAll();
        std::unique_lock<std::mutex> l(m);
        paused = true;
        cv.notify_all();
        cv.wait(l, [&] { return resume; });
      });
    });
    {
      std::unique_lock<std::mutex> l(m);
      cv.wait(l, [&] { return paused; });
    }
    Status s;
    {
      // The serving thread is parked inside its task: the scheduler is ours until `resume`.
      std::vector<int> none;
      for (auto& [d, st] : stores_) none.push_back(d);
      active_.reset();
      (void)hmm_->ReleaseMatching(old_prefix, {});
      phase("stop");
      auto r = LoadFromDisk(TableFor(devices, to, all), new_prefix);
      s = r.status();
      if (r.ok()) rep.bytes_disk += r->bytes_from_disk;
      phase("memory");
      if (s.ok()) {
        stores_.clear();  // preempted: no sequence holds blocks any more
        s = ensure_stores();
      }
      if (s.ok()) {
        auto inst = BootInstance(devices);
        s = inst.status();
        if (s.ok()) {
          next = std::move(*inst);
          DeviceWeightsOptions wo;
          wo.prefix = new_prefix;
          s = AttachInstance(next.get(), devices, to, wo, nullptr);
          if (s.ok()) s = next->WarmUp();
        }
      }
      phase("instance");
      if (s.ok()) {
        std::vector<kv::KvStore*> stores;
        for (int d : devices) stores.push_back(stores_[d].get());
        auto sw = sched_->SwitchInstance(next.get(), stores, {});
        s = sw.status();
        if (s.ok()) ++generation_;
      }
      {
        std::lock_guard<std::mutex> l(m);
        resume = true;
      }
      cv.notify_all();
    }
    pauser.join();
    if (!s.ok()) {
      // The old configuration is gone: this is the cold restart's risk. Say so loudly.
      return s.Annotate("cold restart to " + Devices(devices) +
                        " failed after the old instance was stopped; not serving");
    }
    rep.downtime_s = Since(stop_t);
    rep.latency_s = ev.Since0();
    active_ = std::move(next);
    prefix_ = new_prefix;
    placement_ = to;
    phase("switch");
    return ev.Finish();
  }
  // Extravagant and colocated: the new copy is loaded from disk while the old one serves. Where
  // it shares devices with the old one (colocated), their KV shrinks ahead of time to make room.
  std::vector<int> created;
  std::map<int, uint64_t> kv_room;
  auto rollback = [&](Status s) -> Status {
    next.reset();
    (void)hmm_->ReleaseMatching(new_prefix, {});
    for (int d : created) stores_.erase(d);
    GrowKv(&kv_room);
    return s.Annotate("scale to " + Devices(devices) + " rolled back");
  };
  {
    const hbm::PlacementTable table = TableFor(devices, to, all);
    auto footprint = FootprintOf(table);
    VMM_RETURN_IF_ERROR(footprint.status());
    std::map<int, uint64_t> need = std::move(*footprint);
    for (int d : devices) {
      if (!stores_.count(d)) need[d] += options_.kv_bytes_per_device;
    }
    VMM_RETURN_IF_ERROR(MakeRoom(need, old_devices, &kv_room, &rep));
    auto r = LoadFromDisk(table, new_prefix);
    if (!r.ok()) return rollback(r.status());
    rep.bytes_disk += r->bytes_from_disk;
    for (int d : devices) {
      if (stores_.count(d)) continue;
      auto st = kv::KvStore::Create(*hmm_, d, geometry, options_.kv_bytes_per_device);
      if (!st.ok()) return rollback(st.status());
      stores_[d] = std::move(*st);
      created.push_back(d);
    }
    phase("memory");
  }
  {
    auto inst = TakeStandby(devices, true);
    if (!inst.ok()) return rollback(inst.status());
    next = std::move(*inst);
    DeviceWeightsOptions wo;
    wo.prefix = new_prefix;
    Status s = AttachInstance(next.get(), devices, to, wo, nullptr);
    if (s.ok()) s = next->WarmUp();
    phase("instance");
    if (!s.ok()) return rollback(s);
  }
  Replica* drained = nullptr;
  if (Status st = SwitchServing(next.get(), devices, o.drain, &rep, &drained); !st.ok()) {
    return rollback(st);
  }
  rep.latency_s = ev.Since0();
  phase("switch");
  std::swap(active_, next);
  if (drained != nullptr) {
    OnServingThread([&] { drained->inst = std::move(next); });
    Retire(drained);
    phase("drain");
  }
  next.reset();
  (void)hmm_->ReleaseMatching(old_prefix, {});
  std::set<int> keep(devices.begin(), devices.end());
  for (int d : old_devices) {
    if (!keep.count(d)) stores_.erase(d);
  }
  GrowKv(&kv_room);
  prefix_ = new_prefix;
  placement_ = to;
  phase("cleanup");
  return ev.Finish();
}

StatusOr<ScaleReport> Coordinator::ScaleHorizontal(std::vector<int> to, const ScaleOptions& o) {
  Event ev(this, o, to);
  ScaleReport& rep = ev.rep;
  const std::vector<int> primary = active_->devices();
  const std::vector<int>& from = rep.from_devices;
  const size_t r = primary.size();
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument("horizontal scaling to " + Devices(to) + " refused: " + why +
                                   "; serving continues on " + Devices(from));
  };
  if (to.size() % r != 0) {
    return refuse("replicas are whole copies of the first configuration (" + std::to_string(r) +
                  " devices, " + Devices(primary) + "), and " + std::to_string(to.size()) +
                  " is not a multiple of " + std::to_string(r));
  }
  if (to == from) return refuse("already serving there");
  auto subset = [](const std::vector<int>& a, const std::vector<int>& b) {  // a within b (sorted)
    return std::includes(b.begin(), b.end(), a.begin(), a.end());
  };
  if (to.size() > from.size()) {
    // Scale out: each group of r new devices gets a replica of its own, loaded from disk.
    if (!subset(from, to)) {
      return refuse("a scale-out keeps the devices serving (" + Devices(from) + ")");
    }
    std::vector<int> fresh;
    std::set_difference(to.begin(), to.end(), from.begin(), from.end(), std::back_inserter(fresh));
    struct New {
      std::vector<int> devices;
      std::string prefix;
      experts::ExpertPlacement placement;
      std::unique_ptr<Executor> inst;
    };
    std::vector<New> added;
    std::vector<int> created;  // KV stores
    auto rollback = [&](Status s) -> Status {
      for (New& n : added) {
        n.inst.reset();
        ReleaseReplicaMemory(n.prefix, {});
      }
      for (int d : created) stores_.erase(d);
      return s.Annotate("horizontal scaling to " + Devices(to) +
                        " rolled back; serving continues on " + Devices(from));
    };
    for (size_t i = 0; i < fresh.size(); i += r) {
      New n;
      n.devices.assign(fresh.begin() + i, fresh.begin() + i + r);
      n.prefix = options_.record_namespace + "h" + std::to_string(++prefix_generation_) + "/";
      VMM_ASSIGN_OR_RETURN(n.placement, experts::InitialPlacement(config_.num_hidden_layers,
                                                                  config_.num_experts, n.devices));
      added.push_back(std::move(n));
    }
    ev.Phase("plan");
    if (Status s = ev.Injected("plan"); !s.ok()) return s;
    auto geometry = KvGeometryFor(config_, options_.block_tokens);
    for (New& n : added) {
      auto l = LoadFromDisk(
          TableFor(n.devices, n.placement, [](const TensorSpec&, int) { return true; }), n.prefix);
      if (!l.ok()) return rollback(l.status());
      rep.bytes_disk += l->bytes_from_disk;
      for (int d : n.devices) {
        auto st = kv::KvStore::Create(*hmm_, d, geometry, options_.kv_bytes_per_device);
        if (!st.ok()) return rollback(st.status());
        stores_[d] = std::move(*st);
        created.push_back(d);
      }
    }
    if (Status s = ev.Injected("memory"); !s.ok()) return rollback(s);
    ev.Phase("memory");
    for (New& n : added) {
      auto inst = TakeStandby(n.devices, o.preinit);
      if (!inst.ok()) return rollback(inst.status());
      n.inst = std::move(*inst);
      DeviceWeightsOptions wo;
      wo.prefix = n.prefix;
      Status s = AttachInstance(n.inst.get(), n.devices, n.placement, wo, nullptr);
      if (s.ok()) s = ev.Injected("instance");
      if (s.ok()) s = n.inst->WarmUp();
      if (s.ok()) s = ev.Injected("warmup");
      if (!s.ok()) return rollback(s);
    }
    ev.Phase("instance");
    SchedulerOptions so = options_.scheduler;
    so.clock = [this] { return Now(); };
    OnServingThread([&] {
      for (New& n : added) {
        auto rp = std::make_unique<Replica>();
        rp->devices = n.devices;
        rp->prefix = n.prefix;
        std::vector<kv::KvStore*> stores;
        for (int d : n.devices) stores.push_back(stores_[d].get());
        rp->sched = std::make_unique<Scheduler>(n.inst.get(), stores, so);
        rp->inst = std::move(n.inst);
        rp->concurrent = true;
        replicas_.push_back(std::move(rp));
      }
    });
    rep.latency_s = ev.Since0();
    ev.Phase("switch");
    return ev.Finish();
  }
  // Scale in: added replicas leave whole; the primary stays.
  if (!subset(primary, to)) {
    return refuse("the primary replica on " + Devices(primary) +
                  " stays; only replicas added by horizontal scaling leave");
  }
  // Plan and switch in one stop between two steps: leaving replicas get no new requests, their
  // queues move to the primary, their running requests finish where they are.
  std::vector<Replica*> leaving;
  std::vector<int> kept = primary;
  Status injected = ev.Injected("plan");
  OnServingThread([&] {
    for (const auto& rp : replicas_) {
      if (rp->retiring) continue;
      if (subset(rp->devices, to)) {
        kept.insert(kept.end(), rp->devices.begin(), rp->devices.end());
      } else {
        leaving.push_back(rp.get());
      }
    }
    std::sort(kept.begin(), kept.end());
    if (kept != to || !injected.ok()) return;
    for (Replica* rp : leaving) {
      rp->retiring = true;
      rep.requests_drained += static_cast<int>(rp->sched->running());
      rp->sched->HandOverWaiting(sched_.get());
    }
  });
  if (!injected.ok()) return injected;
  if (kept != to) {
    return refuse("the replicas left would serve " + Devices(kept) +
                  " (replicas leave whole: primary " + Devices(primary) + ")");
  }
  rep.latency_s = ev.Since0();
  ev.Phase("switch");
  std::vector<std::pair<std::string, std::vector<int>>> memory;
  for (Replica* rp : leaving) {
    memory.emplace_back(rp->prefix, rp->devices);
    Retire(rp);
  }
  ev.Phase("drain");
  for (const auto& [prefix, devs] : memory) ReleaseReplicaMemory(prefix, devs);
  ev.Phase("cleanup");
  return ev.Finish();
}

void Coordinator::ReleaseReplicaMemory(const std::string& prefix, const std::vector<int>& devices) {
  if (!prefix.empty()) {
    (void)hmm_->ReleaseMatching(prefix, {});
  }
  for (int d : devices) stores_.erase(d);
}

Status Coordinator::SwitchServing(Executor* next, const std::vector<int>& devices, bool drain,
                                  ScaleReport* rep, Replica** drained) {
  std::vector<kv::KvStore*> stores;
  for (int d : devices) stores.push_back(stores_[d].get());
  hbm::HmmControl* hmm = hmm_;
  kv::PagedSequence::CopyFn copy = [hmm, stores, devices](void* dst, const void* src, uint64_t n) {
    for (size_t i = 0; i < stores.size(); ++i) {
      const uint8_t* b = stores[i]->data();
      if (dst >= b && dst < b + stores[i]->size_bytes()) {
        return hmm->Copy(devices[i], dst, src, n);
      }
    }
    return Status::Internal("KV copy to an unknown store");
  };
  StatusOr<Scheduler::SwitchStats> sw = Status::Internal("switch did not run");
  double blocked = 0;
  OnServingThread([&] {
    const auto ts = Clock::now();
    if (drain) {
      // Running requests stay with the old instance; everything else goes to the new one.
      SchedulerOptions so = options_.scheduler;
      so.clock = [this] { return Now(); };
      auto fresh = std::make_unique<Scheduler>(next, stores, so);
      Scheduler::SwitchStats st;
      st.kept = static_cast<int>(sched_->running());
      sched_->HandOverWaiting(fresh.get());
      auto old = std::make_unique<Replica>();
      old->devices = sched_->instance()->devices();
      old->sched = std::move(sched_);
      old->retiring = true;  // shares the KV stores of remaining devices: steps after sched_
      *drained = old.get();
      replicas_.push_back(std::move(old));
      sched_ = std::move(fresh);
      sw = st;
    } else {
      sw = sched_->SwitchInstance(next, stores, copy);
    }
    if (sw.ok()) ++generation_;
    blocked = Since(ts);
  });
  VMM_RETURN_IF_ERROR(sw.status());
  rep->downtime_s = blocked;
  (drain ? rep->requests_drained : rep->requests_kept) = sw->kept;
  rep->requests_kv_copied = sw->copied;
  rep->requests_recomputed = sw->preempted;
  rep->bytes_p2p += sw->bytes_copied;
  return Status::Ok();
}

void Coordinator::Retire(const Replica* r) {
  for (bool gone = false; !gone;) {
    OnServingThread([&] {
      auto it = std::find_if(replicas_.begin(), replicas_.end(),
                             [&](const auto& p) { return p.get() == r; });
      gone = it == replicas_.end() || (*it)->sched->idle();
      if (it != replicas_.end() && gone) replicas_.erase(it);
    });
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

StatusOr<ScaleReport> Coordinator::RestartInstance() {
  std::lock_guard<std::mutex> control(control_mu_);
  return RestartLocked();
}

void Coordinator::Supervise() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return supervisor_stop_ || crashed_; });
    if (supervisor_stop_) return;
    l.unlock();
    StatusOr<ScaleReport> r = Status::Internal("not restarted");
    {
      std::lock_guard<std::mutex> control(control_mu_);
      // A scale event may have replaced the crashed instance meanwhile.
      bool still = false;
      OnServingThread([&] { still = crashed_; });
      if (still) r = RestartLocked();
    }
    l.lock();
    if (r.ok()) {
      ++restarts_;
    } else if (crashed_) {
      std::fprintf(stderr, "coordinator: restarting the crashed instance failed: %s\n",
                   r.status().ToString().c_str());
      cv_.wait_for(l, std::chrono::milliseconds(200));
    }
  }
}

int Coordinator::restarts() const {
  std::lock_guard<std::mutex> l(mu_);
  return restarts_;
}

StatusOr<ScaleReport> Coordinator::RestartLocked() {
  ScaleReport rep;
  rep.name = "restart";
  rep.from_devices = rep.to_devices = active_->devices();
  const auto t0 = Clock::now();
  rep.command_s = Now();
  rep.arena_before = ArenaUsedBytes();
  const std::vector<int> devices = active_->devices();
  VMM_ASSIGN_OR_RETURN(auto next, BootInstance(devices));
  DeviceWeightsOptions wo;
  wo.prefix = prefix_;
  VMM_RETURN_IF_ERROR(AttachInstance(next.get(), devices, placement_, wo, &rep));
  VMM_RETURN_IF_ERROR(next->WarmUp());
  std::vector<kv::KvStore*> stores;
  for (int d : devices) stores.push_back(stores_[d].get());
  StatusOr<Scheduler::SwitchStats> sw = Status::Internal("switch did not run");
  OnServingThread([&] {
    const auto ts = Clock::now();
    sw = sched_->SwitchInstance(next.get(), stores, {});
    if (sw.ok()) {
      ++generation_;
      crashed_ = false;  // the serving thread holds mu_ while it runs this
    }
    rep.downtime_s = Since(ts);
  });
  VMM_RETURN_IF_ERROR(sw.status());
  rep.requests_kept = sw->kept;
  rep.latency_s = Since(t0);
  active_ = std::move(next);
  rep.arena_after = ArenaUsedBytes();
  return rep;
}

}  // namespace emoe::engine
