// engine/scheduler.h: continuous batching over an Instance, with admission by KV capacity.
//
// Every Step: running requests decode one token each; waiting requests are admitted in arrival
// order while the step's token budget, the batch limit and the KV blocks of some rank allow
// (a new request goes to the rank with the most free blocks: DP load balancing); their whole
// prompt is prefilled in that step. With chunked prefill (SchedulerOptions::chunked_prefill,
// vLLM's --enable-chunked-prefill) a prompt larger than what the budget has left is prefilled
// a chunk per step instead (decodes first, then the prefills in flight, then admissions), so
// that no step exceeds the budget and decodes keep stepping beside a long prompt; it holds the
// KV blocks of its whole prompt from admission on, and its first token is sampled after its
// last chunk. The tokens are the same either way (tested bit for bit). When a running request needs
// a new KV block and its rank has none, the youngest running request of that rank is preempted: its
// blocks are released and it goes back to the front of the queue, to be recomputed (prompt + tokens
// so far) when room returns. Recomputation rebuilds the same KV in exact arithmetic; the tests
// check that greedy outputs with preemptions equal those without.
//
// Invariants (Scheduler::CheckInvariants; they hold between calls, also after a failed Step,
// which puts the requests it admitted back at the front of the queue without their blocks):
//  1. Every request is in exactly one of the waiting queue and the running set, once. Request
//     ids are unique among them (Submit refuses a second one), and no
//     finished request not yet taken (TakeFinished) has the id of a queued or running one.
//  2. A waiting request holds no KV (no sequence, rank -1), has not finished (output <
//     max_new_tokens, and its last output token is not one of its stop tokens) and has started
//     exactly when it has output (a preempted one).
//  3. A running request runs on a rank of the instance (0 <= rank < ranks) with its sequence in
//     that rank's store, and either decodes or prefills. A decoding one has started (its output
//     is not empty: the next step decodes its last token) and its KV holds every token but the
//     last one generated: length = prompt + output - 1 tokens, in at least as many blocks as
//     that length needs. A prefilling one (chunked prefill) prefills prompt + output (output:
//     what it generated before a preemption); its KV holds the first `prefilled` of them, 0 <
//     prefilled < their count, in blocks for all of them plus one. It has not finished:
//     output < max_new_tokens, its last output token is not one of its stop tokens, and
//     length + 1 < the model's context.
//  4. Block accounting: every block a running request holds is a block of its store in use
//     there (refcount > 0); no block is held by two running requests; so per store, the blocks
//     held here are at most num_blocks - free_blocks (other holders: other schedulers' requests).
//  5. Budgets: at most max_batch requests run; the last step's batch held at most max_batch
//     sequences and max_tokens_per_step tokens (prefill + decode).
//  6. One KV store per rank: stores_ and devices_ (rank -> device) have the same length.
//
// Thread safety: none inside (no mutex): one thread at a time drives a Scheduler, every method
// including the const ones. In the coordinator that is the serving thread, a side thread that
// steps a replica's scheduler while the serving thread waits for it, or a thread the serving
// thread hands the scheduler to while it is parked in a task. HandOverWaiting touches both
// schedulers: the caller drives both. Schedulers whose ranks share KV stores may step on
// different threads at once: the stores' block pools lock internally.
#ifndef ENGINE_SCHEDULER_H_
#define ENGINE_SCHEDULER_H_

#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/instance.h"
#include "kv/kv_cache.h"

namespace emoe::engine {

struct Request {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  int max_new_tokens = 16;
  double arrival_s = 0;      // on the scheduler's clock
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;
  uint64_t seed = 1;
  // Generating one of these ends the request (finish_reason "stop"); the token is the last of
  // its output, as vLLM keeps the EOS id (its text is the caller's to leave out). Empty: only
  // the length and the context end it (vLLM's ignore_eos). The tools put the tokenizer's EOS
  // here.
  std::vector<int32_t> stop_token_ids;
};

struct RequestResult {
  int64_t id = 0;
  std::vector<int32_t> output;
  double arrival_s = 0, first_token_s = 0, finish_s = 0;
  int preemptions = 0;
  // "stop" (a stop token, the last of output), "length" (max_new_tokens), "context" (model
  // or KV limit) or "abort" (cancelled: Scheduler::Cancel, with the tokens so far); not served:
  // "rejected: <why>" (refused at admission) or "failed: <why>" (lost when serving stopped).
  std::string finish_reason;
  bool served() const {
    return finish_reason.rfind("rejected", 0) != 0 && finish_reason.rfind("failed", 0) != 0;
  }
  double ttft_s() const { return first_token_s - arrival_s; }
  double e2e_s() const { return finish_s - arrival_s; }
  double tpot_s() const {
    return output.size() > 1 ? (finish_s - first_token_s) / (output.size() - 1) : 0.0;
  }
};

struct SchedulerOptions {
  int64_t max_tokens_per_step = 512;  // prefill + decode tokens in one step
  int max_batch = 64;                 // sequences in one step
  // A prompt larger than the budget left in a step is prefilled over several steps (and a
  // prompt may exceed the budget); off: a prompt is prefilled in one step, at most the budget
  // minus one tokens.
  bool chunked_prefill = false;
  // Seconds on the scheduler's clock, read when a step's tokens are ready (TTFT/TPOT/E2E).
  // Unset: token times are the step's `now_s`.
  std::function<double()> clock;
  Status Validate() const;
};

// Picks the next token from logits: argmax when temperature is 0, else nucleus sampling.
int32_t SampleToken(const std::vector<float>& logits, float temperature, float top_p,
                    std::mt19937_64* rng);

class Scheduler {
 public:
  // `stores[r]`: the KV store of rank r's device.
  Scheduler(Instance* instance, std::vector<kv::KvStore*> stores, SchedulerOptions options);
  ~Scheduler();

  // Queues a request. kInvalidArgument for an empty prompt, a prompt or stop token outside the
  // vocabulary, or a prompt that cannot fit any rank's whole KV store or the model's context.
  Status Submit(Request r);

  // One batch step at time `now_s`; `on_token(id, token)` streams every new token. Returns the
  // number of sequences stepped (0 when nothing could run).
  StatusOr<int> Step(double now_s, const std::function<void(int64_t, int32_t)>& on_token = {});

  // The switchover of a scale event (DESIGN 4.3 step 4): every request continues on `instance`
  // with `stores` (one per rank of the new instance). A running request whose device is also in
  // the new instance, with the same store, keeps its KV: its block table is handed over, nothing
  // is copied or recomputed. A request on a device that leaves has its blocks copied with `copy`
  // (P2P) to the new rank with the most free blocks; without `copy`, or when no rank has room,
  // it is preempted (recomputed later, with the same tokens). Waiting requests just wait.
  // kInvalidArgument (and nothing changed) when the stores do not match the instance.
  struct SwitchStats {
    int kept = 0, copied = 0, preempted = 0;
    uint64_t bytes_copied = 0;
  };
  StatusOr<SwitchStats> SwitchInstance(Instance* instance, std::vector<kv::KvStore*> stores,
                                       const kv::PagedSequence::CopyFn& copy);
  // Moves every waiting request (queued or preempted, with its tokens so far) to the end of
  // `to`'s queue, in order; running requests stay (draining). Returns how many moved.
  int HandOverWaiting(Scheduler* to);
  // Drops every running request's KV and requeues it for recomputation (a cold restart).
  int PreemptAll();
  // Ends every running and waiting request now (their KV freed) with finish_reason `reason`
  // ("failed: ..."): the instance is gone for good. Returns their results.
  std::vector<RequestResult> FailAll(const std::string& reason, double now_s);
  // Ends request `id` now if it is waiting or running here: its KV blocks are freed at once and
  // its result (finish_reason "abort", the tokens so far) goes to TakeFinished. false when it
  // is not here (the caller tries the next scheduler).
  bool Cancel(int64_t id, double now_s);
  Instance* instance() const { return inst_; }
  // Rank -> device and rank -> KV store, as given (the instance's at the last switch).
  const std::vector<int>& devices() const { return devices_; }
  const std::vector<kv::KvStore*>& stores() const { return stores_; }

  bool idle() const { return waiting_.empty() && running_.empty(); }
  size_t waiting() const { return waiting_.size(); }
  size_t running() const { return running_.size(); }
  // Prefill + decode tokens of the last Step (0 before the first).
  int64_t last_step_tokens() const { return last_step_tokens_; }
  std::vector<RequestResult> TakeFinished();

  // Ok when the invariants above hold; otherwise kInternal naming the first one broken and the
  // request or block it concerns. Reads the KV stores' pools (not the instance, which may be
  // gone); the tests call it after every operation.
  Status CheckInvariants() const;

 private:
  struct Active {
    Request req;
    RequestResult result;
    std::unique_ptr<kv::PagedSequence> seq;
    int rank = -1;
    std::mt19937_64 rng;
    bool started = false;
    // Chunked prefill in flight: the tokens being prefilled (prompt + output) and how many of
    // them the KV holds; empty when decoding or waiting.
    std::vector<int32_t> prefill;
    int64_t prefilled = 0;
    bool prefilling() const { return !prefill.empty(); }
  };
  int64_t BlocksFor(int64_t tokens) const;
  void Preempt(size_t index);
  void Unadmit(Active* a);  // back to waiting's state: no KV, no prefill in flight
  // The parts of Step: its batch's running members, its admissions, the finished requests.
  struct Batch;
  void AddRunning(Batch& b);
  void Admit(Batch& b, double now_s);
  void Retire(double now_s);
  void UndoAdmissions(size_t admitted);  // after a failed instance step
  void PreemptForRoom();
  Status CheckQueues() const;   // invariants 1 and 2
  Status CheckRunning() const;  // invariants 3 and 4

  Instance* inst_;
  ModelConfig config_;        // of inst_, kept: the old instance may be gone at a switchover
  std::vector<int> devices_;  // of inst_ (rank -> device), likewise
  std::vector<kv::KvStore*> stores_;
  SchedulerOptions options_;
  std::deque<std::unique_ptr<Active>> waiting_;
  std::vector<std::unique_ptr<Active>> running_;
  std::vector<RequestResult> finished_;
  // The last Step's batch (invariant 5).
  int last_step_batch_ = 0;
  int64_t last_step_tokens_ = 0;
};

}  // namespace emoe::engine

#endif  // ENGINE_SCHEDULER_H_
