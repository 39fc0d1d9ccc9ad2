#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

namespace emoe::engine {

Status SchedulerOptions::Validate() const {
  if (max_tokens_per_step < 1 || max_batch < 1) {
    return Status::InvalidArgument("scheduler: token budget and batch limit must be positive");
  }
  return Status::Ok();
}

namespace {

// True when the last token of `output` is one of `r`'s stop tokens (the request is done).
bool EndsWithStopToken(const Request& r, const std::vector<int32_t>& output) {
  return !output.empty() && std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(),
                                      output.back()) != r.stop_token_ids.end();
}

}  // namespace

int32_t SampleToken(const std::vector<float>& logits, float temperature, float top_p,
                    std::mt19937_64* rng) {
  if (temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<std::pair<double, int32_t>> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = {std::exp((logits[i] - mx) / temperature), static_cast<int32_t>(i)};
    sum += p[i].first;
  }
  std::sort(p.begin(), p.end(), [](auto& a, auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  // The smallest prefix whose mass reaches top_p.
  double mass = 0;
  size_t keep = 0;
  while (keep < p.size() && (keep == 0 || mass < top_p * sum)) mass += p[keep++].first;
  const double u = std::uniform_real_distribution<double>(0.0, mass)(*rng);
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += p[i].first;
    if (u < acc) return p[i].second;
  }
  return p[keep - 1].second;
}

Scheduler::Scheduler(Instance* instance, std::vector<kv::KvStore*> stores, SchedulerOptions options)
    : inst_(instance),
      config_(instance->config()),
      devices_(instance->devices()),
      stores_(std::move(stores)),
      options_(options) {}

Scheduler::~Scheduler() = default;

int64_t Scheduler::BlocksFor(int64_t tokens) const {
  const int64_t bt = stores_[0]->geometry().block_tokens;
  return (tokens + bt - 1) / bt;
}

Status Scheduler::Submit(Request r) {
  VMM_RETURN_IF_ERROR(options_.Validate());
  const ModelConfig& c = config_;
  auto same_id = [&r](const std::unique_ptr<Active>& a) { return a->req.id == r.id; };
  if (std::any_of(waiting_.begin(), waiting_.end(), same_id) ||
      std::any_of(running_.begin(), running_.end(), same_id)) {
    return Status::AlreadyExists("request " + std::to_string(r.id) +
                                 ": a request with this id is already queued or running");
  }
  if (r.prompt.empty())
    return Status::InvalidArgument("request " + std::to_string(r.id) + ": empty prompt");
  for (int32_t t : r.prompt) {
    if (t < 0 || t >= c.vocab_size) {
      return Status::InvalidArgument("request " + std::to_string(r.id) + ": token " +
                                     std::to_string(t) + " outside the vocabulary");
    }
  }
  for (int32_t t : r.stop_token_ids) {
    if (t < 0 || t >= c.vocab_size) {
      return Status::InvalidArgument("request " + std::to_string(r.id) + ": stop token " +
                                     std::to_string(t) + " outside the vocabulary of " +
                                     std::to_string(c.vocab_size));
    }
  }
  if (r.max_new_tokens < 1) {
    return Status::InvalidArgument("request " + std::to_string(r.id) + ": max_new_tokens < 1");
  }
  int64_t largest = 0;
  for (kv::KvStore* s : stores_) largest = std::max(largest, s->pool().num_blocks());
  const int64_t need = static_cast<int64_t>(r.prompt.size()) + 1;
  if (BlocksFor(need) > largest || need > c.max_position_embeddings ||
      (!options_.chunked_prefill && need > options_.max_tokens_per_step)) {
    return Status::InvalidArgument(
        "request " + std::to_string(r.id) + ": a prompt of " + std::to_string(r.prompt.size()) +
        " tokens exceeds the KV store, the model's context or the step's token budget");
  }
  auto a = std::make_unique<Active>();
  a->result.id = r.id;
  a->result.arrival_s = r.arrival_s;
  a->rng.seed(r.seed);
  a->req = std::move(r);
  waiting_.push_back(std::move(a));
  return Status::Ok();
}

int Scheduler::HandOverWaiting(Scheduler* to) {
  const int n = static_cast<int>(waiting_.size());
  for (auto& a : waiting_) to->waiting_.push_back(std::move(a));
  waiting_.clear();
  return n;
}

void Scheduler::UndoAdmissions(size_t admitted) {
  // A failed step set no sequence's length (instances commit lengths only on success), so the
  // decoding requests' KV is as before; the admitted ones hold blocks but no KV: they go back
  // to the front of the queue, in their order, without their blocks.
  for (size_t k = 0; k < admitted; ++k) {
    std::unique_ptr<Active> a = std::move(running_.back());
    running_.pop_back();
    Unadmit(a.get());
    waiting_.push_front(std::move(a));
  }
}

void Scheduler::Unadmit(Active* a) {
  a->seq.reset();  // blocks back to the pool; the tokens so far are recomputed on readmission
  a->rank = -1;
  a->prefill.clear();
  a->prefilled = 0;
}

void Scheduler::Preempt(size_t index) {
  std::unique_ptr<Active> a = std::move(running_[index]);
  running_.erase(running_.begin() + index);
  Unadmit(a.get());
  ++a->result.preemptions;
  waiting_.push_front(std::move(a));
}

// 1. of Step: every running request needs room for one more token; preempt the youngest of a
// rank that runs out of blocks.
void Scheduler::PreemptForRoom() {
  for (int r = 0; r < inst_->num_ranks(); ++r) {
    for (;;) {
      int64_t need = 0;
      for (const auto& a : running_) {
        if (a->rank == r) {
          need += std::max<int64_t>(
              0, BlocksFor(a->seq->length() + 1) - static_cast<int64_t>(a->seq->blocks().size()));
        }
      }
      if (need <= stores_[r]->pool().free_blocks()) break;
      size_t youngest = running_.size();
      for (size_t i = 0; i < running_.size(); ++i) {
        if (running_[i]->rank == r &&
            (youngest == running_.size() ||
             running_[i]->req.arrival_s >= running_[youngest]->req.arrival_s)) {
          youngest = i;
        }
      }
      if (youngest == running_.size()) break;
      Preempt(youngest);
    }
  }
}

// A step's batch as it is built: decodes first, then the prefills in flight, then admissions,
// within the budget. chunk[i]: how many tokens of member i's prefill its input is (0: a decode
// or a whole prompt).
struct Scheduler::Batch {
  std::vector<SequenceInput> inputs;
  std::vector<Active*> members;
  std::vector<int64_t> chunk;
  int64_t budget = 0;
  std::vector<int64_t> free_blocks;  // per rank, after what the batch needs
  size_t admitted = 0;               // the last `admitted` of running_ were admitted by it
  void Add(Active* a, std::vector<int32_t> tokens, int64_t chunk_tokens) {
    budget -= static_cast<int64_t>(tokens.size());
    inputs.push_back({a->seq.get(), std::move(tokens), a->rank});
    members.push_back(a);
    chunk.push_back(chunk_tokens);
  }
};

void Scheduler::AddRunning(Batch& b) {
  auto room = [&] {
    return static_cast<int>(b.inputs.size()) < options_.max_batch && b.budget >= 1;
  };
  for (auto& a : running_) {
    if (!room()) break;
    if (a->prefilling()) continue;
    b.free_blocks[a->rank] -= std::max<int64_t>(
        0, BlocksFor(a->seq->length() + 1) - static_cast<int64_t>(a->seq->blocks().size()));
    b.Add(a.get(), {a->result.output.back()}, 0);
  }
  for (auto& a : running_) {
    if (!room()) break;
    if (!a->prefilling()) continue;
    const int64_t n =
        std::min<int64_t>(b.budget, static_cast<int64_t>(a->prefill.size()) - a->prefilled);
    auto from = a->prefill.begin() + a->prefilled;
    b.Add(a.get(), {from, from + n}, n);
  }
}

void Scheduler::Admit(Batch& b, double now_s) {
  while (!waiting_.empty() && static_cast<int>(b.inputs.size()) < options_.max_batch &&
         b.budget >= 1 && static_cast<int>(running_.size()) < options_.max_batch &&
         waiting_.front()->req.arrival_s <= now_s) {
    Active& a = *waiting_.front();
    std::vector<int32_t> tokens = a.req.prompt;  // plus what it generated before a preemption
    tokens.insert(tokens.end(), a.result.output.begin(), a.result.output.end());
    const int64_t total = static_cast<int64_t>(tokens.size());
    if (total > b.budget && !options_.chunked_prefill) break;
    int best = -1;
    for (int r = 0; r < inst_->num_ranks(); ++r) {
      if (b.free_blocks[r] >= BlocksFor(total + 1) &&
          (best < 0 || b.free_blocks[r] > b.free_blocks[best])) {
        best = r;
      }
    }
    if (best < 0) break;  // wait for KV to free up
    a.rank = best;
    a.seq = std::make_unique<kv::PagedSequence>(stores_[best]);
    const int64_t n = std::min(total, b.budget);
    if (n < total) {
      // A chunked prefill holds the blocks of its whole prompt from now on, so that it never
      // stalls halfway for want of KV (another scheduler may share the store: then it waits).
      if (!a.seq->Reserve(total + 1).ok()) {
        Unadmit(&a);
        break;
      }
      a.prefill = tokens;
      tokens.resize(n);
    }
    b.free_blocks[best] -= BlocksFor(total + 1);
    b.Add(&a, std::move(tokens), n < total ? n : 0);
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    ++b.admitted;
  }
}

void Scheduler::Retire(double now_s) {
  const ModelConfig& c = inst_->config();
  for (size_t i = 0; i < running_.size();) {
    Active& a = *running_[i];
    if (a.prefilling()) {
      ++i;
      continue;
    }
    // vLLM's order: a stop token first (also when it is the last token allowed), then length.
    const bool stop = EndsWithStopToken(a.req, a.result.output);
    const bool length = static_cast<int>(a.result.output.size()) >= a.req.max_new_tokens;
    const bool context = a.seq->length() + 1 >= c.max_position_embeddings ||
                         BlocksFor(a.seq->length() + 1) > stores_[a.rank]->pool().num_blocks();
    if (stop || length || context) {
      a.result.finish_s = now_s;
      a.result.finish_reason = stop ? "stop" : length ? "length" : "context";
      finished_.push_back(a.result);
      running_.erase(running_.begin() + i);
    } else {
      ++i;
    }
  }
}

StatusOr<int> Scheduler::Step(double now_s, const std::function<void(int64_t, int32_t)>& on_token) {
  PreemptForRoom();  // 1. (a prefill in flight holds its blocks already: it needs none)
  // 2. The batch.
  Batch b;
  b.budget = options_.max_tokens_per_step;
  b.free_blocks.resize(inst_->num_ranks());
  for (int r = 0; r < inst_->num_ranks(); ++r) b.free_blocks[r] = stores_[r]->pool().free_blocks();
  AddRunning(b);
  Admit(b, now_s);
  last_step_batch_ = static_cast<int>(b.inputs.size());
  last_step_tokens_ = options_.max_tokens_per_step - b.budget;
  if (b.inputs.empty()) return 0;
  auto stepped = inst_->Step(b.inputs);
  if (!stepped.ok()) {
    UndoAdmissions(b.admitted);  // the prefills in flight keep their KV: no length was committed
    return stepped.status();
  }
  auto& logits = *stepped;
  if (options_.clock) now_s = options_.clock();
  // 3. Sample, stream, retire. A prefill's chunks before its last give no token.
  for (size_t i = 0; i < b.members.size(); ++i) {
    Active& a = *b.members[i];
    if (a.prefilling()) {
      a.prefilled += b.chunk[i];
      if (a.prefilled < static_cast<int64_t>(a.prefill.size())) continue;
      a.prefill.clear();
      a.prefilled = 0;
    }
    const int32_t tok = SampleToken(logits[i], a.req.temperature, a.req.top_p, &a.rng);
    a.result.output.push_back(tok);
    if (!a.started) {
      a.started = true;
      a.result.first_token_s = now_s;
    }
    if (on_token) on_token(a.req.id, tok);
  }
  Retire(now_s);
  return static_cast<int>(b.inputs.size());
}

StatusOr<Scheduler::SwitchStats> Scheduler::SwitchInstance(Instance* instance,
                                                           std::vector<kv::KvStore*> stores,
                                                           const kv::PagedSequence::CopyFn& copy) {
  if (instance == nullptr || static_cast<int>(stores.size()) != instance->num_ranks()) {
    return Status::InvalidArgument("switchover: one KV store per rank of the new instance needed");
  }
  // The old instance is only known by what was copied from it: in a cold restart it is already
  // gone (and nothing is running).
  const ModelConfig &a = instance->config(), &b = config_;
  if (a.hidden_size != b.hidden_size || a.vocab_size != b.vocab_size ||
      a.num_hidden_layers != b.num_hidden_layers || a.num_experts != b.num_experts) {
    return Status::InvalidArgument("switchover to an instance of another model");
  }
  SwitchStats st;
  std::vector<int> new_rank(running_.size(), -1);
  for (size_t i = 0; i < running_.size(); ++i) {
    const int r = instance->rank_of_device(devices_.at(running_[i]->rank));
    if (r >= 0 && stores[r] == running_[i]->seq->store()) new_rank[i] = r;
  }
  // Handed-over blocks stay where they are; moved ones go to the freest new rank.
  std::vector<int64_t> free_blocks(stores.size());
  for (size_t r = 0; r < stores.size(); ++r) free_blocks[r] = stores[r]->pool().free_blocks();
  inst_ = instance;
  config_ = instance->config();
  devices_ = instance->devices();
  stores_ = std::move(stores);
  for (size_t i = 0, k = 0; i < running_.size(); ++k) {
    Active& a = *running_[i];
    if (new_rank[k] >= 0) {
      a.rank = new_rank[k];
      ++st.kept;
      ++i;
      continue;
    }
    int best = -1;
    const int64_t need = static_cast<int64_t>(a.seq->blocks().size()) + 1;
    for (size_t r = 0; r < stores_.size(); ++r) {
      if (free_blocks[r] >= need && (best < 0 || free_blocks[r] > free_blocks[best])) {
        best = static_cast<int>(r);
      }
    }
    if (copy && best >= 0) {
      auto moved = a.seq->CopyTo(stores_[best], copy);
      if (moved.ok()) {
        st.bytes_copied += a.seq->blocks().size() * stores_[best]->geometry().block_bytes();
        free_blocks[best] -= static_cast<int64_t>((*moved)->blocks().size());
        a.seq = std::move(*moved);  // the old blocks return to the leaving device's pool
        a.rank = best;
        ++st.copied;
        ++i;
        continue;
      }
    }
    Preempt(i);
    ++st.preempted;
  }
  return st;
}

int Scheduler::PreemptAll() {
  int n = 0;
  while (!running_.empty()) {
    Preempt(running_.size() - 1);
    ++n;
  }
  return n;
}

std::vector<RequestResult> Scheduler::FailAll(const std::string& reason, double now_s) {
  std::vector<RequestResult> out;
  auto fail = [&](std::unique_ptr<Active>& a) {
    a->seq.reset();
    a->result.finish_s = now_s;
    a->result.finish_reason = reason;
    out.push_back(std::move(a->result));
  };
  for (auto& a : running_) fail(a);
  for (auto& a : waiting_) fail(a);
  running_.clear();
  waiting_.clear();
  return out;
}

bool Scheduler::Cancel(int64_t id, double now_s) {
  auto finish = [&](std::unique_ptr<Active> a) {
    a->seq.reset();  // its blocks back to the pool now
    a->result.finish_s = now_s;
    a->result.finish_reason = "abort";
    finished_.push_back(std::move(a->result));
  };
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i]->req.id != id) continue;
    std::unique_ptr<Active> a = std::move(running_[i]);
    running_.erase(running_.begin() + i);
    finish(std::move(a));
    return true;
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->req.id != id) continue;
    std::unique_ptr<Active> a = std::move(*it);
    waiting_.erase(it);
    finish(std::move(a));
    return true;
  }
  return false;
}

std::vector<RequestResult> Scheduler::TakeFinished() {
  std::vector<RequestResult> out;
  out.swap(finished_);
  return out;
}

namespace {

Status Broken(int n, const std::string& what) {
  return Status::Internal("scheduler invariant " + std::to_string(n) + ": " + what);
}

std::string Req(int64_t id) { return "request " + std::to_string(id); }

}  // namespace

Status Scheduler::CheckInvariants() const {
  if (stores_.size() != devices_.size()) {
    return Broken(6, std::to_string(stores_.size()) + " KV stores for " +
                         std::to_string(devices_.size()) + " ranks");
  }
  VMM_RETURN_IF_ERROR(CheckQueues());
  VMM_RETURN_IF_ERROR(CheckRunning());
  if (static_cast<int>(running_.size()) > options_.max_batch ||
      last_step_batch_ > options_.max_batch || last_step_tokens_ > options_.max_tokens_per_step) {
    return Broken(5, std::to_string(running_.size()) + " running, the last step " +
                         std::to_string(last_step_batch_) + " sequences of " +
                         std::to_string(last_step_tokens_) + " tokens; limits " +
                         std::to_string(options_.max_batch) + " and " +
                         std::to_string(options_.max_tokens_per_step));
  }
  return Status::Ok();
}

// Invariants 1 and 2.
Status Scheduler::CheckQueues() const {
  std::set<const Active*> seen;
  std::set<int64_t> ids;
  auto enter = [&](const std::unique_ptr<Active>& a) -> Status {
    if (a == nullptr) return Broken(1, "an empty entry in the queues");
    if (!seen.insert(a.get()).second) return Broken(1, Req(a->req.id) + " is queued twice");
    if (!ids.insert(a->req.id).second) return Broken(1, "two requests with id " + Req(a->req.id));
    return Status::Ok();
  };
  for (const auto& a : waiting_) VMM_RETURN_IF_ERROR(enter(a));
  for (const auto& a : running_) VMM_RETURN_IF_ERROR(enter(a));
  for (const RequestResult& r : finished_) {
    if (ids.count(r.id) != 0) return Broken(1, "finished " + Req(r.id) + " is still queued");
  }
  for (const auto& a : waiting_) {
    const std::string who = Req(a->req.id);
    if (a->seq != nullptr || a->rank != -1) return Broken(2, who + " waits holding KV");
    if (static_cast<int>(a->result.output.size()) >= a->req.max_new_tokens) {
      return Broken(2, who + " waits with all its tokens");
    }
    if (EndsWithStopToken(a->req, a->result.output)) {
      return Broken(2,
                    who + " waits after its stop token " + std::to_string(a->result.output.back()));
    }
    if (a->started == a->result.output.empty()) {
      return Broken(2, who + " has started but has no output, or the other way round");
    }
  }
  return Status::Ok();
}

// Invariants 3 and 4.
Status Scheduler::CheckRunning() const {
  std::map<kv::KvStore*, std::set<kv::BlockId>> held;
  for (const auto& a : running_) {
    const std::string who = Req(a->req.id);
    if (!a->prefilling() && (!a->started || a->result.output.empty())) {
      return Broken(3, who + " decodes unstarted");
    }
    if (a->rank < 0 || a->rank >= static_cast<int>(stores_.size())) {
      return Broken(3, who + " runs on rank " + std::to_string(a->rank) + " of " +
                           std::to_string(stores_.size()));
    }
    if (a->seq == nullptr || a->seq->store() != stores_[a->rank]) {
      return Broken(3, who + " has no KV in its rank's store");
    }
    const kv::PagedSequence& seq = *a->seq;
    const int64_t tokens = static_cast<int64_t>(a->req.prompt.size() + a->result.output.size());
    const int64_t want = a->prefilling() ? a->prefilled : tokens - 1;
    if (seq.length() != want) {
      return Broken(3, who + " holds " + std::to_string(seq.length()) + " tokens of KV, not " +
                           std::to_string(want));
    }
    if (a->prefilling()) {
      std::vector<int32_t> all = a->req.prompt;
      all.insert(all.end(), a->result.output.begin(), a->result.output.end());
      if (a->prefill != all) return Broken(3, who + " prefills other tokens than its own");
      if (a->prefilled <= 0 || a->prefilled >= tokens) {
        return Broken(3, who + " prefills with " + std::to_string(a->prefilled) + " of " +
                             std::to_string(tokens) + " tokens done");
      }
    }
    const int64_t bt = seq.store()->geometry().block_tokens;
    const int64_t hold = a->prefilling() ? tokens + 1 : seq.length();
    if (static_cast<int64_t>(seq.blocks().size()) * bt < hold) {
      return Broken(3, who + ": " + std::to_string(seq.blocks().size()) + " blocks for " +
                           std::to_string(hold) + " tokens");
    }
    if (static_cast<int>(a->result.output.size()) >= a->req.max_new_tokens ||
        seq.length() + 1 >= config_.max_position_embeddings) {
      return Broken(3, who + " has finished but still runs");
    }
    if (EndsWithStopToken(a->req, a->result.output)) {
      return Broken(
          3, who + " still runs after its stop token " + std::to_string(a->result.output.back()));
    }
    kv::BlockPool& pool = seq.store()->pool();
    for (kv::BlockId b : seq.blocks()) {
      if (b < 0 || b >= pool.num_blocks() || pool.refcount(b) <= 0) {
        return Broken(
            4, who + " holds block " + std::to_string(b) + ", which is not in use in its store");
      }
      if (!held[seq.store()].insert(b).second) {
        return Broken(4, "block " + std::to_string(b) + " is held twice, once by " + who);
      }
    }
  }
  for (const auto& [store, blocks] : held) {
    const int64_t used = store->pool().num_blocks() - store->pool().free_blocks();
    if (static_cast<int64_t>(blocks.size()) > used) {
      return Broken(4, std::to_string(blocks.size()) + " blocks held of a store that has " +
                           std::to_string(used) + " in use");
    }
  }
  return Status::Ok();
}

}  // namespace emoe::engine
