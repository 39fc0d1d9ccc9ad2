// A device's team of threads: every member runs every job exactly once, the caller returns only
// when all are done (so the job's captures may live on its stack), shares cover every row once,
// and an idle team sleeps instead of spinning.
#include "engine/thread_team.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace emoe::engine {
namespace {

TEST(ThreadTeamTest, RangesCoverEveryRowOnceAligned) {
  for (int64_t n : {0, 1, 7, 8, 9, 64, 1000, 1024}) {
    for (int members = 1; members <= 5; ++members) {
      for (int64_t align : {1, 8, 64}) {
        int64_t next = 0;
        for (int i = 0; i < members; ++i) {
          const auto [first, last] = ThreadTeam::Range(n, members, i, align);
          EXPECT_EQ(first, next) << n << " rows, member " << i << " of " << members;
          EXPECT_LE(first, last);
          if (last < n) {
            EXPECT_EQ(last % align, 0);
          }
          next = last;
        }
        EXPECT_EQ(next, n);
      }
    }
  }
}

TEST(ThreadTeamTest, EveryMemberRunsEveryJobOnce) {
  for (int size : {1, 2, 3}) {
    ThreadTeam team(size);
    EXPECT_EQ(team.size(), size);
    for (int job = 0; job < 2000; ++job) {
      std::vector<int> ran(size, 0);  // on this stack: Run must not return before all are done
      team.Run([&](int member) { ++ran[member]; });
      for (int m = 0; m < size; ++m) ASSERT_EQ(ran[m], 1) << "job " << job << " member " << m;
    }
  }
}

// After the spin window the helpers sleep; a job after a long pause still runs everywhere.
TEST(ThreadTeamTest, SleepingHelpersWakeForTheNextJob) {
  ThreadTeam team(3);
  std::atomic<int> count{0};
  team.Run([&](int) { count.fetch_add(1); });
  std::this_thread::sleep_for(std::chrono::nanoseconds(ThreadTeam::kSpinNs * 5));
  team.Run([&](int) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 6);
}

TEST(ThreadTeamTest, DestroysWhileHelpersSleepOrSpin) {
  for (int i = 0; i < 50; ++i) {
    ThreadTeam team(2, {0});
    if (i % 2) team.Run([](int) {});
  }
}

}  // namespace
}  // namespace emoe::engine
