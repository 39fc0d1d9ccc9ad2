#include "serving/serving_loop.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace emoe::engine {

StepThread::StepThread(const std::string& name)
    : thread_([this] {
        vmm::MutexLock l(&mu_);
        for (;;) {
          while (!stop_ && !job_) cv_.Wait(&mu_);
          if (stop_ && !job_) return;
          std::function<void()> job = std::move(job_);
          job_ = nullptr;
          mu_.Unlock();
          job();
          mu_.Lock();
          busy_ = false;
          cv_.SignalAll();
        }
      }) {
  pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
}

StepThread::~StepThread() {
  {
    vmm::MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  thread_.join();
}

void StepThread::Start(std::function<void()> job) {
  {
    vmm::MutexLock l(&mu_);
    job_ = std::move(job);
    busy_ = true;
  }
  cv_.SignalAll();
}

void StepThread::Wait() {
  vmm::MutexLock l(&mu_);
  while (busy_) cv_.Wait(&mu_);
}

ServingLoop::ServingLoop(std::function<double()> clock, int vocab_size, bool supervised,
                         bool check_invariants, ServingObserver* observer, bool keep_history)
    : clock_(std::move(clock)),
      vocab_size_(vocab_size),
      supervised_(supervised),
      check_invariants_(check_invariants),
      observer_(observer),
      stats_(keep_history) {}

void ServingLoop::CheckInvariants(const char* after) const {
  if (!check_invariants_) return;
  Status s = primary_->CheckInvariants();
  for (size_t i = 0; s.ok() && i < replicas_.size(); ++i)
    s = replicas_[i]->sched->CheckInvariants();
  if (!s.ok()) {
    std::fprintf(stderr, "serving loop: scheduler invariant broken after %s: %s\n", after,
                 s.ToString().c_str());
    std::abort();
  }
}

ServingLoop::~ServingLoop() { Stop(); }

void ServingLoop::Start(std::unique_ptr<Scheduler> primary) {
  server_ = std::thread([this, p = std::move(primary)]() mutable {
    thread_.Bind();
    thread_.AssertHeld();
    primary_ = std::move(p);
    Run();
  });
  pthread_setname_np(server_.native_handle(), "serve");
  // The first snapshot is there when Start returns (Coordinator::Create's callers read it).
  vmm::MutexLock l(&mu_);
  while (!published_) cv_.Wait(&mu_);
}

void ServingLoop::Stop() {
  {
    vmm::MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (server_.joinable()) server_.join();
}

Status ServingLoop::Submit(Request r) {
  if (r.arrival_s == 0) r.arrival_s = clock_();
  if (r.prompt.empty() || r.max_new_tokens < 1) {
    return Status::InvalidArgument("request " + std::to_string(r.id) +
                                   ": empty prompt or max_new_tokens < 1");
  }
  for (int32_t t : r.prompt) {
    if (t < 0 || t >= vocab_size_) {
      return Status::InvalidArgument("request " + std::to_string(r.id) + ": token " +
                                     std::to_string(t) + " outside the vocabulary");
    }
  }
  {
    vmm::MutexLock l(&mu_);
    if (!down_.empty()) {
      return Status::FailedPrecondition("request " + std::to_string(r.id) +
                                        ": not serving: " + down_);
    }
  }
  stats_.Accepted();
  {
    vmm::MutexLock l(&mu_);
    inbox_.push_back(std::move(r));  // after a MarkDown meanwhile, Run() fails it
  }
  cv_.SignalAll();
  return Status::Ok();
}

void ServingLoop::Cancel(int64_t id) {
  {
    vmm::MutexLock l(&mu_);
    cancels_.push_back(id);
  }
  cv_.SignalAll();
}

ServingSnapshot ServingLoop::Snapshot() const {
  const double now = clock_();
  vmm::MutexLock l(&mu_);
  ServingSnapshot s = snapshot_;
  s.waiting += static_cast<int64_t>(inbox_.size());
  s.down = down_;
  if (now > s.t) {
    s.device_seconds += static_cast<double>(s.devices.size()) * (now - s.t);
    s.t = now;
  }
  return s;
}

ServingLoop::TaskWait ServingLoop::RunBetweenSteps(const std::function<void()>& fn) {
  const auto called = std::chrono::steady_clock::now();
  TaskWait wait;
  vmm::MutexLock l(&mu_);
  while (task_ != nullptr) task_cv_.Wait(&mu_);
  task_ = &fn;
  task_wait_ = &wait;
  task_called_ = called;
  cv_.SignalAll();
  while (task_ == &fn) task_cv_.Wait(&mu_);
  return wait;
}

std::unique_ptr<Scheduler> ServingLoop::ReplacePrimary(std::unique_ptr<Scheduler> s) {
  std::swap(primary_, s);
  return s;
}

Replica* ServingLoop::AddReplica(std::unique_ptr<Replica> r) {
  if (r->concurrent && r->stepper == nullptr) {
    r->stepper = std::make_unique<StepThread>("replica-" + std::to_string(replicas_.size()));
  }
  replicas_.push_back(std::move(r));
  return replicas_.back().get();
}

void ServingLoop::ClearCrashed() {
  vmm::MutexLock l(&mu_);
  crashed_ = false;
}

std::vector<std::vector<int>> ServingLoop::ReplicaDevices() const {
  vmm::MutexLock l(&mu_);
  return replica_devices_;
}

bool ServingLoop::AnyFailedReplica() const {
  vmm::MutexLock l(&mu_);
  return any_failed_;
}

void ServingLoop::MarkDown(const Status& why) {
  const std::string reason = why.ToString();
  {
    vmm::MutexLock l(&mu_);
    down_ = reason.empty() ? "down" : reason;
  }
  std::vector<RequestResult> done = primary_->FailAll("failed: " + reason, clock_());
  for (auto& r : replicas_) {
    std::vector<RequestResult> more = r->sched->FailAll("failed: " + reason, clock_());
    done.insert(done.end(), more.begin(), more.end());
  }
  Deliver(0, {}, 0, std::move(done));
}

bool ServingLoop::crashed() const {
  vmm::MutexLock l(&mu_);
  return crashed_;
}

bool ServingLoop::AwaitCrash() {
  vmm::MutexLock l(&mu_);
  while (!supervisor_stop_ && !crashed_) cv_.Wait(&mu_);
  return !supervisor_stop_;
}

void ServingLoop::SupervisorPause(std::chrono::milliseconds d) {
  vmm::MutexLock l(&mu_);
  if (!supervisor_stop_) cv_.WaitFor(&mu_, d);
}

void ServingLoop::StopSupervisor() {
  {
    vmm::MutexLock l(&mu_);
    supervisor_stop_ = true;
  }
  cv_.SignalAll();
}

void ServingLoop::Publish() {
  std::vector<std::vector<int>> devices;
  bool failed = false;
  ServingSnapshot s;
  s.t = clock_();
  s.generation = generation_;
  s.busy_seconds = busy_s_;
  s.primary = primary_->devices();
  std::sort(s.primary.begin(), s.primary.end());
  s.devices = s.primary;
  std::vector<const kv::KvStore*> stores(primary_->stores().begin(), primary_->stores().end());
  s.running = static_cast<int64_t>(primary_->running());
  s.waiting = static_cast<int64_t>(primary_->waiting());
  for (const auto& r : replicas_) {
    if (!r->retiring) {
      devices.push_back(r->devices);
      s.devices.insert(s.devices.end(), r->devices.begin(), r->devices.end());
    }
    failed = failed || r->failed;
    s.running += static_cast<int64_t>(r->sched->running());
    s.waiting += static_cast<int64_t>(r->sched->waiting());
    stores.insert(stores.end(), r->sched->stores().begin(), r->sched->stores().end());
  }
  std::sort(s.devices.begin(), s.devices.end());
  s.devices.erase(std::unique(s.devices.begin(), s.devices.end()), s.devices.end());
  std::sort(stores.begin(), stores.end());
  stores.erase(std::unique(stores.begin(), stores.end()), stores.end());
  for (const kv::KvStore* st : stores) {
    if (st == nullptr) continue;
    const kv::BlockPool& pool = st->pool();
    const int64_t n = pool.num_blocks();
    s.kv_blocks_total += n;
    s.kv_blocks_used += n - pool.free_blocks();
    s.kv_block_bytes = st->geometry().block_bytes();
  }
  vmm::MutexLock l(&mu_);
  replica_devices_ = std::move(devices);
  any_failed_ = failed;
  // device_seconds: the devices serving until now, then the new set from now on.
  if (!published_) {
    published_ = true;
    cv_.SignalAll();
  }
  s.device_seconds = snapshot_.device_seconds;
  if (s.t > snapshot_.t) {
    s.device_seconds += static_cast<double>(snapshot_.devices.size()) * (s.t - snapshot_.t);
  } else {
    s.t = snapshot_.t;
  }
  snapshot_ = std::move(s);
}

void ServingLoop::CountStepForTask(double step_s) {
  vmm::MutexLock l(&mu_);
  if (task_wait_ == nullptr) return;
  ++task_wait_->steps;
  if (step_s >= task_wait_->longest_step_s) {
    task_wait_->longest_step_s = step_s;
    task_wait_->step_tokens = step_tokens_;
  }
}

bool ServingLoop::Idle() const {
  bool idle = primary_->idle();
  for (const auto& r : replicas_) idle = idle && r->sched->idle();
  return idle;
}

bool ServingLoop::Next(const std::function<void()>** task, std::deque<Request>* in,
                       std::vector<int64_t>* cancels) {
  vmm::MutexLock l(&mu_);
  for (;;) {
    if (task_ != nullptr) {
      *task = task_;
      return true;
    }
    if (stop_) return false;
    if (crashed_) {  // nothing can run until the supervisor has restarted the instance
      cv_.WaitFor(&mu_, std::chrono::milliseconds(10));
      continue;
    }
    if (!inbox_.empty() || !cancels_.empty() || !Idle()) break;
    cv_.WaitFor(&mu_, std::chrono::milliseconds(50));
  }
  in->swap(inbox_);
  cancels->swap(cancels_);
  return true;
}

void ServingLoop::Admit(std::deque<Request>* in, const std::vector<int64_t>& cancels,
                        std::vector<RequestResult>* done) {
  for (Request& r : *in) {
    Status s = Route()->Submit(r);
    if (!s.ok()) {
      RequestResult res;
      res.id = r.id;
      res.arrival_s = r.arrival_s;
      res.finish_s = clock_();
      res.finish_reason = "rejected: " + s.ToString();
      done->push_back(res);
    }
  }
  for (int64_t id : cancels) {
    if (primary_->Cancel(id, clock_())) continue;
    for (const auto& r : replicas_) {
      if (r->sched->Cancel(id, clock_())) break;
    }
  }
}

void ServingLoop::Deliver(int stepped, const std::vector<TokenEvent>& tokens, int replica_tokens,
                          std::vector<RequestResult> done) {
  if (observer_ != nullptr) {
    if (!tokens.empty()) observer_->OnTokens(tokens);
    if (!done.empty()) observer_->OnFinished(done);
  }
  stats_.Record(clock_(), stepped, tokens, replica_tokens, generation_, std::move(done));
}

void ServingLoop::Run() {
  thread_.AssertHeld();
  Publish();
  for (;;) {
    const std::function<void()>* task = nullptr;
    std::deque<Request> in;
    std::vector<int64_t> cancels;
    if (!Next(&task, &in, &cancels)) return;
    if (task != nullptr) {
      {
        vmm::MutexLock l(&mu_);
        task_wait_->wait_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - task_called_).count();
      }
      (*task)();
      CheckInvariants("a task");
      Publish();
      {
        vmm::MutexLock l(&mu_);
        task_ = nullptr;
        task_wait_ = nullptr;
      }
      task_cv_.SignalAll();
      continue;
    }
    std::vector<RequestResult> done;
    Admit(&in, cancels, &done);
    std::string down;
    {
      vmm::MutexLock l(&mu_);
      down = down_;
    }
    if (!down.empty()) {  // requests that arrived before MarkDown: refused above or failed here,
                          // naming why serving stopped
      std::vector<RequestResult> lost = primary_->FailAll("failed: not serving: " + down, clock_());
      done.insert(done.end(), lost.begin(), lost.end());
      for (auto& r : primary_->TakeFinished()) done.push_back(std::move(r));  // cancelled
      Deliver(0, {}, 0, std::move(done));
      continue;
    }
    std::vector<TokenEvent> tokens;
    int replica_tokens = 0;
    const double step_t0 = clock_();
    auto n = StepAll(&tokens, &done, &replica_tokens);
    const double step_s = clock_() - step_t0;
    busy_s_ += step_s;
    CountStepForTask(step_s);
    if (!n.ok()) {
      stats_.CountError();
      if (n.status().code() == vmm::StatusCode::kUnavailable && primary_->instance()->pid() != 0 &&
          supervised_) {
        {
          vmm::MutexLock l(&mu_);
          crashed_ = true;  // the instance process is gone: the supervisor restarts it
        }
        cv_.SignalAll();
        std::fprintf(stderr, "coordinator: %s\n", n.status().ToString().c_str());
      }
    }
    CheckInvariants("a step");
    Publish();
    Deliver(n.ok() ? *n : 0, tokens, replica_tokens, std::move(done));
  }
}

Scheduler* ServingLoop::Route() {
  Scheduler* best = primary_.get();
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

StatusOr<int> ServingLoop::StepAll(std::vector<TokenEvent>* tokens,
                                   std::vector<RequestResult>* done, int* replica_tokens) {
  // Replicas on devices of their own step at the same time as the primary (each instance has
  // its own threads and KV stores); the others (a draining old instance shares the primary's KV
  // stores) step after it.
  struct Job {
    Replica* replica = nullptr;  // null: the primary
    Scheduler* sched;
    std::vector<TokenEvent> tokens;
    StatusOr<int> n = 0;
  };
  std::vector<Job> jobs(1);
  jobs[0].sched = primary_.get();
  for (const auto& r : replicas_) {
    if (!r->sched->idle()) jobs.push_back({r.get(), r->sched.get(), {}, 0});
  }
  auto run = [this](Job& j) {
    j.n = j.sched->Step(clock_(), [&](int64_t id, int32_t token) {
      j.tokens.push_back({id, token, clock_()});
    });
  };
  for (size_t i = 1; i < jobs.size(); ++i) {
    if (jobs[i].replica->concurrent) jobs[i].replica->stepper->Start([&, i] { run(jobs[i]); });
  }
  run(jobs[0]);
  for (size_t i = 1; i < jobs.size(); ++i) {
    if (jobs[i].replica->concurrent) jobs[i].replica->stepper->Wait();
  }
  for (size_t i = 1; i < jobs.size(); ++i) {
    if (!jobs[i].replica->concurrent) run(jobs[i]);
  }
  int stepped = 0;
  step_tokens_ = 0;
  for (Job& j : jobs) {
    step_tokens_ += j.sched->last_step_tokens();
    for (auto& r : j.sched->TakeFinished()) done->push_back(std::move(r));
    tokens->insert(tokens->end(), j.tokens.begin(), j.tokens.end());
    if (j.replica != nullptr) *replica_tokens += static_cast<int>(j.tokens.size());
    if (j.n.ok()) {
      stepped += *j.n;
      continue;
    }
    if (j.replica == nullptr) return j.n.status();
    FailReplica(j.replica, j.n.status());
  }
  return stepped;  // the caller publishes
}

void ServingLoop::FailReplica(Replica* r, const Status& s) {
  // Its process died: its requests are recomputed on the primary, and it gets nothing new; a
  // later scale event removes it.
  std::fprintf(stderr, "coordinator: replica on %s failed, its requests move to the primary: %s\n",
               DevicesText(r->devices).c_str(), s.ToString().c_str());
  stats_.CountError();
  r->retiring = true;
  r->failed = true;
  r->sched->PreemptAll();
  r->sched->HandOverWaiting(primary_.get());
}

ServingPause::ServingPause(ServingLoop& loop) {
  thread_ = std::thread([this, &loop] {
    loop.RunBetweenSteps([&] {
      loop.thread().AssertHeld();
      primary_ = loop.primary();
      primary_->PreemptAll();
      vmm::MutexLock l(&mu_);
      paused_ = true;
      cv_.SignalAll();
      while (!resume_) cv_.Wait(&mu_);
      if (on_resume_) on_resume_();
    });
  });
  vmm::MutexLock l(&mu_);
  while (!paused_) cv_.Wait(&mu_);
}

void ServingPause::Resume() {
  {
    vmm::MutexLock l(&mu_);
    resume_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

}  // namespace emoe::engine
