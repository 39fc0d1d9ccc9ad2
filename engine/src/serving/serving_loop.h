// engine/src/serving/serving_loop.h: the serving thread. It takes requests from an inbox, routes
// each to the scheduler with the fewest in flight (the primary or a horizontal replica), and
// steps every scheduler: the primary on the serving thread, replicas on devices of their own at
// the same time on a persistent thread each, replicas that share the primary's KV stores (a
// draining old instance) after it.
//
// Everything a scale event changes in serving (the primary scheduler, the replicas, the
// generation) is serving-thread state, GUARDED_BY(thread()): other threads change it only inside
// RunBetweenSteps(fn), which runs fn on the serving thread between two steps. Tasks run outside
// the loop's mutex, so Submit() never waits for a switchover or a cold restart, only for the
// inbox's mutex.
//
// A step that fails with kUnavailable on a supervised instance process marks the loop crashed:
// nothing steps until ClearCrashed() (the coordinator's supervisor restarts the instance).
//
// Thread safety: Submit, RunBetweenSteps, the stats and the snapshots from any thread; the
// methods REQUIRES(thread()) on the serving thread only (inside a task).
#ifndef ENGINE_SRC_SERVING_SERVING_LOOP_H_
#define ENGINE_SRC_SERVING_SERVING_LOOP_H_

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/instance.h"
#include "engine/scheduler.h"
#include "engine/serving_view.h"
#include "serving/serving_stats.h"
#include "vmm/mutex.h"

namespace emoe::engine {

// A thread that runs one job at a time, kept for the life of a concurrent replica (instead of a
// thread spawned every step).
class StepThread {
 public:
  explicit StepThread(const std::string& name);
  ~StepThread();
  StepThread(const StepThread&) = delete;
  StepThread& operator=(const StepThread&) = delete;
  // Starts `job` on the thread. REQUIRES: the previous job was waited for.
  void Start(std::function<void()> job) EXCLUDES(mu_);
  // Waits until the job started last has finished.
  void Wait() EXCLUDES(mu_);

 private:
  vmm::Mutex mu_;
  vmm::CondVar cv_;
  std::function<void()> job_ GUARDED_BY(mu_);
  bool busy_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the fields above exist
};

// An instance and its scheduler stepped besides the primary: a horizontal replica, or the old
// instance finishing its running requests after a draining switch.
struct Replica {
  std::vector<int> devices;
  std::string prefix;              // HMM names of its weights (horizontal replicas)
  std::unique_ptr<Instance> inst;  // declared before sched: destroyed after it
  std::unique_ptr<Scheduler> sched;
  bool retiring = false;    // gets no new requests; removed once idle
  bool failed = false;      // its instance could not step; its requests went to the primary
  bool concurrent = false;  // its devices are its own: steps next to the primary's step
  std::unique_ptr<StepThread> stepper;  // concurrent replicas: their stepping thread (last)
};

class ServingLoop {
 public:
  // `clock`: seconds on the coordinator's clock. `vocab_size` bounds request tokens.
  // `supervised`: a dead instance process marks the loop crashed (see the header comment).
  // `check_invariants`: every scheduler's CheckInvariants() after every step and task; a broken
  // one aborts naming it (tests). `observer` (optional, not owned) is told every step's tokens
  // and results on the serving thread; `keep_history` false keeps no results, timeline or gaps
  // in stats() (CoordinatorOptions::keep_history).
  ServingLoop(std::function<double()> clock, int vocab_size, bool supervised,
              bool check_invariants = false, ServingObserver* observer = nullptr,
              bool keep_history = true);
  ~ServingLoop();  // Stop()
  ServingLoop(const ServingLoop&) = delete;
  ServingLoop& operator=(const ServingLoop&) = delete;

  // Starts the serving thread with `primary` as the primary scheduler; returns once its first
  // snapshot is published.
  void Start(std::unique_ptr<Scheduler> primary) EXCLUDES(mu_);
  // Runs the pending task, then stops the thread. Idempotent.
  void Stop() EXCLUDES(mu_);

  // Queues a request (validation errors at once). Never blocks on a step or a task.
  Status Submit(Request r) EXCLUDES(mu_);
  // Cancels request `id` before the next step (Coordinator::Cancel). Never blocks on a step.
  void Cancel(int64_t id) EXCLUDES(mu_);
  // The load and configuration as of the last step or task, device_seconds brought up to now.
  ServingSnapshot Snapshot() const EXCLUDES(mu_);
  // What a task waited for before it ran (a scale event's switch reports it): the steps that
  // ended between the task's queueing and its start, at most one (the step in flight), since
  // the loop runs a queued task before it steps again.
  struct TaskWait {
    double wait_s = 0;          // the call -> the task starts (an earlier caller's task included)
    int steps = 0;              // steps that ended in between
    double longest_step_s = 0;  // the longest of them, its start to its end
    int64_t step_tokens = 0;    // that step's prefill + decode tokens, all schedulers
  };
  // Runs `fn` on the serving thread between two steps and waits for it. One task at a time:
  // a second caller waits for the first. REQUIRES: the loop runs.
  TaskWait RunBetweenSteps(const std::function<void()>& fn) EXCLUDES(mu_);

  // The serving thread's role: what tasks assert (thread().AssertHeld()) before they touch
  // serving-thread state.
  const vmm::ThreadRole& thread() const RETURN_CAPABILITY(thread_) { return thread_; }
  Scheduler* primary() REQUIRES(thread_) { return primary_.get(); }
  // Replaces the primary scheduler; returns the old one.
  std::unique_ptr<Scheduler> ReplacePrimary(std::unique_ptr<Scheduler> s) REQUIRES(thread_);
  std::vector<std::unique_ptr<Replica>>& replicas() REQUIRES(thread_) { return replicas_; }
  // Adds a replica (concurrent ones get their stepping thread).
  Replica* AddReplica(std::unique_ptr<Replica> r) REQUIRES(thread_);
  // A new instance serves: the timeline's generation counter.
  void NextGeneration() REQUIRES(thread_) { ++generation_; }
  void ClearCrashed() EXCLUDES(mu_);
  // No instance serves any more (a cold restart failed after the old one stopped): every
  // request in flight fails with `why`, new ones are refused naming it, nothing steps.
  void MarkDown(const Status& why) REQUIRES(thread_) EXCLUDES(mu_);

  // Snapshots for any thread (as of the last step or task).
  std::vector<std::vector<int>> ReplicaDevices() const EXCLUDES(mu_);  // serving, in order added
  bool AnyFailedReplica() const EXCLUDES(mu_);
  bool crashed() const EXCLUDES(mu_);
  ServingStats& stats() { return stats_; }
  const ServingStats& stats() const { return stats_; }

  // The supervisor's wait: true when the loop crashed, false when StopSupervisor() was called.
  bool AwaitCrash() EXCLUDES(mu_);
  // Waits up to `d` unless the supervisor is told to stop.
  void SupervisorPause(std::chrono::milliseconds d) EXCLUDES(mu_);
  void StopSupervisor() EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(mu_);
  // Waits for a task or work; returns the task (null: step `*in` after cancelling `*cancels`),
  // or false to stop.
  bool Next(const std::function<void()>** task, std::deque<Request>* in,
            std::vector<int64_t>* cancels) REQUIRES(thread_) EXCLUDES(mu_);
  // Routes `in` (the refused to `done`) and applies `cancels` (their results come out of the
  // schedulers at the next step).
  void Admit(std::deque<Request>* in, const std::vector<int64_t>& cancels,
             std::vector<RequestResult>* done) REQUIRES(thread_);
  // One step's outcome: to the observer, then into the stats.
  void Deliver(int stepped, const std::vector<TokenEvent>& tokens, int replica_tokens,
               std::vector<RequestResult> done) REQUIRES(thread_);
  bool Idle() const REQUIRES(thread_);
  Scheduler* Route() REQUIRES(thread_);
  // One step of every scheduler. Adds tokens (request id, time) and finished results.
  StatusOr<int> StepAll(std::vector<TokenEvent>* tokens, std::vector<RequestResult>* done,
                        int* replica_tokens) REQUIRES(thread_);
  // A replica whose instance failed: its requests go to the primary; it gets nothing new.
  void FailReplica(Replica* r, const Status& s) REQUIRES(thread_);
  void Publish() REQUIRES(thread_) EXCLUDES(mu_);
  // A step of `step_s` ended: counted into the queued task's TaskWait, if one waits.
  void CountStepForTask(double step_s) REQUIRES(thread_) EXCLUDES(mu_);
  void CheckInvariants(const char* after) const REQUIRES(thread_);

  const std::function<double()> clock_;
  const int vocab_size_;
  const bool supervised_;
  const bool check_invariants_;
  ServingObserver* const observer_;
  ServingStats stats_;

  vmm::ThreadRole thread_{"serving-thread"};
  std::unique_ptr<Scheduler> primary_ GUARDED_BY(thread_);
  std::vector<std::unique_ptr<Replica>> replicas_ GUARDED_BY(thread_);
  int generation_ GUARDED_BY(thread_) = 0;
  double busy_s_ GUARDED_BY(thread_) = 0;  // ServingSnapshot::busy_seconds

  mutable vmm::Mutex mu_;
  vmm::CondVar cv_;       // work, a task, a crash, stop
  vmm::CondVar task_cv_;  // a task is done
  std::deque<Request> inbox_ GUARDED_BY(mu_);
  std::vector<int64_t> cancels_ GUARDED_BY(mu_);
  ServingSnapshot snapshot_ GUARDED_BY(mu_);  // as of the last Publish
  bool published_ GUARDED_BY(mu_) = false;    // the first Publish is done
  const std::function<void()>* task_ GUARDED_BY(mu_) = nullptr;
  // The caller's record of what it waits for (RunBetweenSteps' frame), from the call until its
  // task has run: every step that ends meanwhile is counted into it.
  TaskWait* task_wait_ GUARDED_BY(mu_) = nullptr;
  std::chrono::steady_clock::time_point task_called_ GUARDED_BY(mu_);
  int64_t step_tokens_ GUARDED_BY(thread_) = 0;  // the last StepAll's, all schedulers
  bool stop_ GUARDED_BY(mu_) = false;
  bool supervisor_stop_ GUARDED_BY(mu_) = false;
  bool crashed_ GUARDED_BY(mu_) = false;
  std::string down_ GUARDED_BY(mu_);  // MarkDown's reason; empty while serving
  std::vector<std::vector<int>> replica_devices_ GUARDED_BY(mu_);
  bool any_failed_ GUARDED_BY(mu_) = false;
  std::thread server_;
};

// Parks the serving thread inside a task from construction until Resume() (or destruction): the
// primary scheduler is the caller's meanwhile (a cold restart's stop; its running requests are
// preempted first). Submit still returns at once; requests wait in the inbox.
class ServingPause {
 public:
  explicit ServingPause(ServingLoop& loop);
  ~ServingPause() { Resume(); }
  ServingPause(const ServingPause&) = delete;
  ServingPause& operator=(const ServingPause&) = delete;
  // The primary scheduler, the caller's while paused.
  Scheduler* primary() const { return primary_; }
  // `fn` runs on the serving thread right before it resumes.
  void OnResume(std::function<void()> fn) { on_resume_ = std::move(fn); }
  void Resume() EXCLUDES(mu_);

 private:
  vmm::Mutex mu_;
  vmm::CondVar cv_;
  bool paused_ GUARDED_BY(mu_) = false;
  bool resume_ GUARDED_BY(mu_) = false;
  Scheduler* primary_ = nullptr;
  std::function<void()> on_resume_;
  std::thread thread_;
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SERVING_SERVING_LOOP_H_
