// Every operation either succeeds or leaves the manager exactly as it was: for each operation,
// each syscall it makes and each call of that syscall, inject ENOMEM / EAGAIN / EINTR and compare
// the state before and after.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "test_util.h"
#include "vmm/vmm.h"

namespace vmm {
namespace {

constexpr Syscall kAll[] = {Syscall::kMemfdCreate, Syscall::kFtruncate, Syscall::kFcntl,
                            Syscall::kFallocate,   Syscall::kMmap,      Syscall::kMunmap,
                            Syscall::kMremap,      Syscall::kMprotect,  Syscall::kMadvise,
                            Syscall::kMbind};
constexpr int kErrors[] = {ENOMEM, EAGAIN, EINTR};

// What must not change when an operation fails.
struct Snapshot {
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, uint64_t, int>> table;
  uint64_t used = 0;
  uint64_t live = 0;
  int fds = 0;
  bool operator==(const Snapshot&) const = default;
};

struct World {
  FaultInjectingOs os;
  std::shared_ptr<Arena> arena;
  std::unique_ptr<Reservation> r, other;
  Extent x, y;

  Snapshot Take() const {
    Snapshot s;
    for (const Reservation* res : {r.get(), other.get()}) {
      for (const Mapping& m : res->Mappings()) {
        s.table.emplace_back(m.offset, m.length, m.extent.first_page(), m.extent_offset,
                             static_cast<int>(m.prot));
      }
    }
    const ArenaStats st = arena->Stats();
    s.used = st.used_bytes;
    s.live = st.live_extents;
    s.fds = testing::OpenFdCount();
    return s;
  }
};

// Builds a world on `policy` pages: x mapped at slot 0 (populated), y mapped at slot 2, slot 1
// and the other reservation empty. Returns null (with skip) when the host lacks the kind.
std::unique_ptr<World> MakeWorld(PageSizePolicy policy, std::string* skip) {
  auto w = std::make_unique<World>();
  w->arena = testing::MakeArena(policy, 16 << 20, skip, "fault", &w->os);
  if (!w->arena) return nullptr;
  const uint64_t page = w->arena->page_size();
  w->r = *Reservation::Reserve(4 * page, kHugePageSize, &w->os, "fault.r");
  w->other = *Reservation::Reserve(4 * page, kHugePageSize, &w->os, "fault.other");
  w->x = *w->arena->Allocate(page);
  w->y = *w->arena->Allocate(page);
  std::memset(w->x.data(), 'x', page);
  std::memset(w->y.data(), 'y', page);
  CheckOk(w->r->Map(0, w->x, 0, 0, {Protection::kReadWrite, true}), "map x");
  CheckOk(w->r->Map(2 * page, w->y), "map y");
  return w;
}

struct Op {
  const char* name;
  std::function<Status(World&)> run;
};

std::vector<Op> Ops() {
  auto page = [](World& w) { return w.arena->page_size(); };
  return {
      {"map+populate",
       [=](World& w) {
         Extent e = *w.arena->View(w.x.offset_bytes(), page(w));
         return w.r->Map(page(w), e, 0, 0, {Protection::kReadWrite, true});
       }},
      {"map read-only",
       [=](World& w) {
         return w.r->Map(page(w), w.y, 0, 0, {Protection::kRead, true});
       }},
      {"unmap", [=](World& w) { return w.r->Unmap(0); }},
      {"move within", [=](World& w) { return w.r->Move(0, *w.r, page(w)); }},
      {"move across", [=](World& w) { return w.r->Move(2 * page(w), *w.other, page(w)); }},
      {"swap", [=](World& w) { return w.r->Swap(0, 2 * page(w)); }},
      {"protect", [=](World& w) { return w.r->Protect(0, Protection::kRead); }},
  };
}

class FaultInjectionTest : public ::testing::TestWithParam<PageSizePolicy> {};

TEST_P(FaultInjectionTest, EveryStepFailsCleanly) {
  int injected = 0, failed_ops = 0;
  for (const Op& op : Ops()) {
    // Count the calls the operation makes when nothing fails.
    std::string skip;
    auto probe = MakeWorld(GetParam(), &skip);
    if (!probe) GTEST_SKIP() << skip;
    probe->os.ResetCounts();
    ASSERT_TRUE(op.run(*probe).ok()) << op.name;
    std::vector<std::pair<Syscall, uint64_t>> calls;
    for (Syscall s : kAll) calls.emplace_back(s, probe->os.Calls(s));
    probe.reset();

    for (auto [syscall, n] : calls) {
      for (uint64_t nth = 0; nth < n; ++nth) {
        for (int err : kErrors) {
          auto w = MakeWorld(GetParam(), &skip);
          ASSERT_TRUE(w);
          const Snapshot before = w->Take();
          w->os.FailNth(syscall, static_cast<int>(nth), err);
          const Status st = op.run(*w);
          w->os.Clear();
          ++injected;
          const std::string what = std::string(op.name) + " with " + SyscallName(syscall) +
                                   " call " + std::to_string(nth) + " failing with " +
                                   strerrorname_np(err) + ": " + st.ToString();
          if (!st.ok()) {
            ++failed_ops;
            EXPECT_EQ(st.err(), err) << what;
            EXPECT_TRUE(w->Take() == before) << what << ": the state changed";
          }
          EXPECT_TRUE(testing::MatchesKernel(*w->r)) << what;
          EXPECT_TRUE(testing::MatchesKernel(*w->other)) << what;
          EXPECT_TRUE(w->r->CheckInvariants().ok()) << what;
          EXPECT_TRUE(w->arena->CheckInvariants().ok()) << what;
          // The data is intact wherever x and y are mapped now.
          for (const Reservation* res : {w->r.get(), w->other.get()}) {
            for (const Mapping& m : res->Mappings()) {
              const char want = m.extent.first_page() == w->x.first_page() ? 'x' : 'y';
              EXPECT_EQ(static_cast<char>(res->base()[m.offset + 100]), want) << what;
            }
          }
          // And the world still works after the failure.
          EXPECT_TRUE(w->r->Unmap(0).ok() || !w->r->MappingAt(0)) << what;
        }
      }
    }
  }
  EXPECT_GT(injected, 20);
  EXPECT_GT(failed_ops, 10);
}

TEST_P(FaultInjectionTest, ArenaCreateFailsWithoutLeaks) {
  for (Syscall syscall : kAll) {
    for (int nth = 0; nth < 3; ++nth) {
      for (int err : kErrors) {
        FaultInjectingOs os, warm_os;
        ArenaOptions o;
        o.name = "create-fault";
        o.capacity_bytes = 4 << 20;
        o.page_size = GetParam();
        o.numa_node = 0;
        // The same failure once before counting: its first run may map memory of the process's
        // allocator (ASan's maps a region per size class on first use), which is no leak.
        o.os = &warm_os;
        warm_os.FailNth(syscall, nth, err);
        (void)Arena::Create(o);
        o.os = &os;
        const int fds = testing::OpenFdCount();
        const long vmas = ProcessVmaCount();
        const int64_t arenas = GlobalCounters().arenas_now.load();
        os.FailNth(syscall, nth, err);
        auto a = Arena::Create(o);
        const std::string what = std::string(SyscallName(syscall)) + " call " +
                                 std::to_string(nth) + " " + strerrorname_np(err);
        if (!a.ok()) {
          if (a.status().code() == StatusCode::kUnavailable && os.Failures() == 0) {
            GTEST_SKIP() << a.status().message();
          }
          EXPECT_EQ(testing::OpenFdCount(), fds) << what << ": fd leaked";
          EXPECT_EQ(ProcessVmaCount(), vmas) << what << ": mapping leaked";
          EXPECT_EQ(GlobalCounters().arenas_now.load(), arenas) << what;
        } else {
          EXPECT_TRUE((*a)->CheckInvariants().ok()) << what;
        }
      }
    }
  }
}

TEST(FaultInjectionTest, ReserveFailsWithoutLeaks) {
  for (Syscall s : {Syscall::kMmap, Syscall::kMunmap}) {
    for (int nth = 0; nth < 2; ++nth) {
      FaultInjectingOs os, warm_os;
      warm_os.FailNth(s, nth, ENOMEM);
      (void)Reservation::Reserve(8 << 20, 1 << 21, &warm_os);  // as above: warms the allocator
      const long vmas = ProcessVmaCount();
      os.FailNth(s, nth, ENOMEM);
      auto r = Reservation::Reserve(8 << 20, 1 << 21, &os);
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
        EXPECT_EQ(ProcessVmaCount(), vmas);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, FaultInjectionTest,
                         ::testing::Values(PageSizePolicy::kSmall, PageSizePolicy::kShmemThp,
                                           PageSizePolicy::kHugetlb),
                         [](const auto& info) {
                           std::string n = testing::PolicyName(info.param);
                           return n == "4k" ? std::string("small4k") : n;
                         });

}  // namespace
}  // namespace vmm
