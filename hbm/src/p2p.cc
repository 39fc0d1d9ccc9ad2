#include "hbm/p2p.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>

#include "stream_copy.h"

namespace emoe::hbm {

CopyEngine::CopyEngine(const std::vector<DeviceSpec>& devices, int threads_per_device) {
  int max_id = -1;
  for (const auto& d : devices) max_id = std::max(max_id, d.id);
  teams_.resize(max_id + 1);
  for (const auto& d : devices) {
    auto team = std::make_unique<Team>();
    team->node = d.node;
    int n = threads_per_device > 0 ? threads_per_device
                                   : std::min<int>(8, std::max<size_t>(1, d.cpus.size()));
    for (int i = 0; i < n; ++i) {
      team->threads.emplace_back(&CopyEngine::Work, this, team.get(), d.cpus);
      // Named for top -H / perf: "p2p-d<device>".
      pthread_setname_np(team->threads.back().native_handle(),
                         ("p2p-d" + std::to_string(d.id)).substr(0, 15).c_str());
    }
    teams_[d.id] = std::move(team);
  }
}

CopyEngine::~CopyEngine() {
  for (auto& t : teams_) {
    if (!t) continue;
    {
      vmm::MutexLock l(&t->mu);
      t->stop = true;
    }
    t->cv.SignalAll();
    for (auto& th : t->threads) th.join();
  }
}

const char* CopyEngine::StoreKind() { return StreamKindName(BestStreamKind()); }

bool CopyEngine::KnownDevice(int device) const {
  return device >= 0 && device < static_cast<int>(teams_.size()) && teams_[device] != nullptr;
}

int CopyEngine::threads(int device) const {
  return KnownDevice(device) ? static_cast<int>(teams_[device]->threads.size()) : 0;
}

void CopyEngine::Work(Team* team, std::vector<int> cpus) {
  if (!cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
  }
  for (;;) {
    std::function<void()> job;
    {
      vmm::MutexLock l(&team->mu);
      while (!team->stop && team->queue.empty()) team->cv.Wait(&team->mu);
      if (team->queue.empty()) return;  // stop requested and drained
      job = std::move(team->queue.front());
      team->queue.pop_front();
    }
    job();
  }
}

std::future<Status> CopyEngine::CopyAsync(int dst_device, void* dst, const void* src,
                                          uint64_t bytes) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  if (!KnownDevice(dst_device)) {
    promise->set_value(
        Status::InvalidArgument("copy to unknown device " + std::to_string(dst_device)));
    return future;
  }
  Team* team = teams_[dst_device].get();
  // One part per worker, each at least 1 MiB, split at 4 KiB boundaries.
  const uint64_t workers = team->threads.size();
  uint64_t parts = std::max<uint64_t>(1, std::min<uint64_t>(workers, bytes >> 20));
  const uint64_t part = ((bytes + parts - 1) / parts + 4095) & ~uint64_t{4095};
  parts = bytes == 0 ? 1 : (bytes + part - 1) / part;
  auto left = std::make_shared<std::atomic<uint64_t>>(parts);
  {
    vmm::MutexLock l(&team->mu);
    for (uint64_t p = 0; p < parts; ++p) {
      const uint64_t off = p * part;
      const uint64_t n = off < bytes ? std::min(part, bytes - off) : 0;
      team->queue.push_back([=] {
        if (n > 0) {
          StreamCopy(static_cast<uint8_t*>(dst) + off, static_cast<const uint8_t*>(src) + off, n);
        }
        if (left->fetch_sub(1) == 1) promise->set_value(Status::Ok());
      });
    }
  }
  team->cv.SignalAll();
  return future;
}

// One CopyBatch in flight, shared by its queued jobs (the last one to finish may outlive the
// caller's wait by a few instructions).
struct CopyEngine::Batch {
  struct Chunk {
    size_t span = 0;
    uint64_t offset = 0;  // in the span
    uint64_t bytes = 0;
  };
  std::vector<CopySpan> spans;
  std::vector<Chunk> chunks;  // span order
  // Steady-clock nanoseconds of each chunk's start and end, each written by its worker only and
  // read after `done` (the promise orders them).
  std::vector<int64_t> start_ns, end_ns;
  std::atomic<size_t> next{0};  // the next chunk to queue
  std::atomic<size_t> left{0};  // chunks not finished
  std::promise<void> done;
};

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void CopyEngine::SubmitChunk(const std::shared_ptr<Batch>& b, size_t i) {
  Team* team = teams_[b->spans[b->chunks[i].span].dst_device].get();
  {
    vmm::MutexLock l(&team->mu);
    team->queue.push_back([this, b, i, team] { RunChunk(b, i, team); });
  }
  team->cv.Signal();
}

void CopyEngine::RunChunk(const std::shared_ptr<Batch>& b, size_t i, const Team* team) {
  for (;;) {
    const Batch::Chunk& c = b->chunks[i];
    const CopySpan& s = b->spans[c.span];
    b->start_ns[i] = NowNs();
    StreamCopy(static_cast<uint8_t*>(s.dst) + c.offset,
               static_cast<const uint8_t*>(s.src) + c.offset, c.bytes);
    b->end_ns[i] = NowNs();
    // This chunk's slot goes to the next one (max_parallel > 0; with 0 all are queued already).
    // Taken before this one counts as done, so `left` cannot reach 0 while it waits.
    const size_t next = b->next.fetch_add(1);
    if (b->left.fetch_sub(1) == 1) {
      b->done.set_value();
      return;
    }
    if (next >= b->chunks.size()) return;
    if (teams_[b->spans[b->chunks[next].span].dst_device]->node != team->node) {
      SubmitChunk(b, next);
      return;
    }
    i = next;
  }
}

StatusOr<CopyBatchTimes> CopyEngine::CopyBatch(const std::vector<CopySpan>& spans,
                                               uint64_t chunk_bytes, int max_parallel) {
  if (chunk_bytes == 0 || chunk_bytes % 4096 != 0) {
    return Status::InvalidArgument("copy batch: chunk_bytes is " + std::to_string(chunk_bytes) +
                                   "; it must be a positive multiple of 4096");
  }
  if (max_parallel < 0) {
    return Status::InvalidArgument("copy batch: max_parallel is " + std::to_string(max_parallel) +
                                   "; it must be 0 (every worker) or a positive number of chunks");
  }
  auto b = std::make_shared<Batch>();
  b->spans = spans;
  for (size_t i = 0; i < spans.size(); ++i) {
    if (!KnownDevice(spans[i].dst_device)) {
      return Status::InvalidArgument("copy batch: span " + std::to_string(i) +
                                     " copies to unknown device " +
                                     std::to_string(spans[i].dst_device));
    }
    for (uint64_t off = 0; off < spans[i].bytes; off += chunk_bytes) {
      b->chunks.push_back({i, off, std::min(chunk_bytes, spans[i].bytes - off)});
    }
  }
  CopyBatchTimes out;
  out.spans.resize(spans.size());
  const size_t n = b->chunks.size();
  out.chunks = n;
  if (n == 0) return out;
  b->start_ns.assign(n, 0);
  b->end_ns.assign(n, 0);
  const size_t first = max_parallel > 0 ? std::min<size_t>(max_parallel, n) : n;
  b->next = first;
  b->left = n;
  std::future<void> done = b->done.get_future();
  for (size_t i = 0; i < first; ++i) SubmitChunk(b, i);
  done.wait();
  const int64_t t0 = *std::min_element(b->start_ns.begin(), b->start_ns.end());
  const int64_t t1 = *std::max_element(b->end_ns.begin(), b->end_ns.end());
  out.wall_s = (t1 - t0) / 1e9;
  std::vector<bool> seen(spans.size(), false);
  for (size_t i = 0; i < n; ++i) {
    SpanTimes& t = out.spans[b->chunks[i].span];
    const double start = (b->start_ns[i] - t0) / 1e9, end = (b->end_ns[i] - t0) / 1e9;
    t.start_s = seen[b->chunks[i].span] ? std::min(t.start_s, start) : start;
    t.end_s = std::max(t.end_s, end);
    seen[b->chunks[i].span] = true;
  }
  return out;
}

}  // namespace emoe::hbm
