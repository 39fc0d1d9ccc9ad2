// HmmServer::Stop with a client's work in flight: it cancels the work, interrupts a client thread
// blocked in a system call, and returns promptly instead of waiting for the work to end.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>

#include "hbm/server.h"
#include "test_files.h"
#include "vmm/unix_socket.h"

namespace emoe::hbm {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ScratchDir;

std::vector<DeviceSpec> TwoDevices() {
  std::vector<DeviceSpec> specs(2);
  for (int i = 0; i < 2; ++i) {
    specs[i].id = i;
    specs[i].cpus = {0};
    specs[i].capacity_bytes = 16 << 20;
  }
  return specs;
}

// Sends `request` on a new connection to `socket` and returns its reply's status (on a thread
// of its own: the reply comes when the server is done with it, or never).
std::future<Status> Ask(const std::string& socket, const std::string& request) {
  return std::async(std::launch::async, [socket, request]() -> Status {
    VMM_ASSIGN_OR_RETURN(vmm::UniqueFd fd, vmm::ConnectUnixSocket(socket));
    VMM_RETURN_IF_ERROR(SendRequest(fd.get(), request));
    VMM_ASSIGN_OR_RETURN(vmm::ReceivedMessage m, ReceiveReply(fd.get()));
    return ReplyStatus(m.payload);
  });
}

std::string LoadRequest(const std::string& path, const std::string& tensor) {
  return R"({"op":"load","checkpoint":")" + path + R"(","prefix":"stuck/","placement":[{"name":")" +
         tensor + R"(","usage":"weights","devices":[0]}]})";
}

// Waits (bounded, only to catch a hang) until `done` holds.
bool WaitUntil(const std::function<bool()>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// The load's thread blocks in a system call that no cancellation reaches (its first progress
// report waits forever in poll(), as an open() of a FIFO would) and the load would take long
// after that (each later report sleeps 100 ms: 80 batches). Stop interrupts the call, the load
// stops at its next batch, and Stop returns long before the load could have finished.
TEST(ServerStopTest, StopInterruptsAndCancelsAClientStuckInALoad) {
  ScratchDir dir;
  std::vector<TensorToWrite> t = {
      {"big", DType::kF32, {5, 1 << 18}, testing::RandomBytes(5 << 20, 1)}};
  ASSERT_TRUE(WriteSafetensors(dir.File("m.safetensors"), t).ok());
  std::atomic<int> reports{0};
  HmmOptions o;
  o.memory.usage_bytes = {8 << 20, 0, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  o.loader.queue_depth = 1;
  o.loader.chunk_bytes = 64 << 10;
  o.loader.direct_io = false;
  o.loader.progress_interval_s = 0;
  o.loader.progress = [&](const LoadProgress&) {
    if (reports++ == 0) {
      poll(nullptr, 0, -1);  // returns only when a signal interrupts it
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  auto hmm = Hmm::CreateWithDevices(TwoDevices(), o);
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  ServerOptions so;
  so.socket_path = dir.File("hmmd.sock");
  HmmServer server(hmm->get(), so);
  ASSERT_TRUE(server.Start().ok());
  auto reply = Ask(so.socket_path, LoadRequest(dir.File("m.safetensors"), "big"));
  ASSERT_TRUE(WaitUntil([&] { return reports.load() > 0; })) << "the load did not start";
  const auto t0 = Clock::now();
  server.Stop();
  const double stop_s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(stop_s, 5.0) << "Stop waited for the load (which needs > 8 s)";
  ASSERT_EQ(reply.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_FALSE(reply.get().ok()) << "the load was cut short";
  EXPECT_FALSE((*hmm)->Find("stuck/big", 0).ok()) << "a stopped load registers nothing";
  EXPECT_LT(reports.load(), 40);
}

// A load of a FIFO nobody writes blocks its thread in open(); Stop still returns. (Where loads
// refuse non-regular files before opening them, nothing blocks: then this case is moot.)
TEST(ServerStopTest, StopEndsAClientBlockedOpeningAFifo) {
  ScratchDir dir;
  const std::string fifo = dir.File("fifo.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  HmmOptions o;
  o.memory.usage_bytes = {4 << 20, 0, 0};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  auto hmm = Hmm::CreateWithDevices(TwoDevices(), o);
  ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
  ServerOptions so;
  so.socket_path = dir.File("hmmd.sock");
  HmmServer server(hmm->get(), so);
  ASSERT_TRUE(server.Start().ok());
  auto reply = Ask(so.socket_path, LoadRequest(fifo, "x"));
  // A thread of this process waiting in the FIFO's open (its wchan), or the reply (refused).
  auto blocked = [] {
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream w(e.path() / "wchan");
      std::string f;
      if (std::getline(w, f) && f == "wait_for_partner") return true;
    }
    return false;
  };
  ASSERT_TRUE(WaitUntil([&] {
    return blocked() || reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }));
  if (!blocked()) {
    const Status s = reply.get();
    EXPECT_FALSE(s.ok());
    GTEST_SKIP() << "the FIFO was refused without blocking: " << s.ToString();
  }
  const auto t0 = Clock::now();
  server.Stop();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  ASSERT_EQ(reply.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_FALSE(reply.get().ok());
}

}  // namespace
}  // namespace emoe::hbm
