// hmmd admission (hbm/server.h "Admission"): idle connections cannot lock real clients out (the
// handshake deadline), one process cannot take every slot (the per-peer cap), idle connections
// that hold nothing make room for newcomers while those that hold memory, arenas or the control
// connection are never reaped. Real sockets and processes.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "hbm/client.h"
#include "test_files.h"

namespace emoe::hbm {
namespace {

using testing::ScratchDir;
using Clock = std::chrono::steady_clock;

// Generous: only catches hangs.
constexpr auto kHang = std::chrono::seconds(60);

// The next reply on `fd` within kHang, or its error (kUnavailable once the server closed it).
StatusOr<vmm::ReceivedMessage> NextReply(int fd) {
  pollfd pf{fd, POLLIN, 0};
  if (poll(&pf, 1, static_cast<int>(std::chrono::milliseconds(kHang).count())) != 1) {
    return Status::Internal("no reply within a minute: hung");
  }
  return ReceiveReply(fd);
}

// Runs `child` in a forked process; returns its exit code (128+signal if killed).
int Join(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
pid_t InChild(const std::function<int()>& child) {
  const pid_t pid = fork();
  if (pid == 0) _exit(child());
  return pid;
}

// Connects until the server admits us (or kHang passes).
StatusOr<std::unique_ptr<HmmClient>> ConnectWhenAdmitted(const std::string& socket) {
  const auto deadline = Clock::now() + kHang;
  for (;;) {
    auto c = HmmClient::Connect(socket);
    if (c.ok() || Clock::now() > deadline) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class AdmissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSafetensors(dir_.File("m.safetensors"),
                                 {{"embed", DType::kF32, {1024}, testing::RandomBytes(4096, 1)}})
                    .ok());
    auto ckpt = OpenCheckpoint(dir_.File("m.safetensors"));
    ASSERT_TRUE(ckpt.ok());
    HmmOptions o;
    o.memory.usage_bytes = {1 << 20, 0, 1 << 20};
    o.memory.page_size = vmm::PageSizePolicy::kSmall;
    std::vector<DeviceSpec> specs(1);
    specs[0].cpus = {0};
    specs[0].capacity_bytes = 4 << 20;
    auto hmm = Hmm::CreateWithDevices(specs, o);
    ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
    hmm_ = std::move(*hmm);
    ASSERT_TRUE(hmm_->LoadCheckpoint(*ckpt, ReplicateEverywhere({0})).ok());
    socket_ = dir_.File("hmmd.sock");
  }

  std::unique_ptr<HmmServer> StartServer(const ConnectionLimits& limits) {
    ServerOptions o;
    o.socket_path = socket_;
    o.limits = limits;
    auto s = std::make_unique<HmmServer>(hmm_.get(), o);
    vmm::Status st = s->Start();
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }

  ScratchDir dir_;
  std::unique_ptr<Hmm> hmm_;
  std::string socket_;
};

// The issue's lock-out: 64 connections of one process that never send a request fill every slot
// (the per-peer cap set as high, to leave the deadline alone to help). A real client still gets
// in, after the handshake deadline at the latest, and every idle connection is told why it was
// closed.
TEST_F(AdmissionTest, IdleConnectionsDoNotLockOutRealClients) {
  ConnectionLimits lim;
  lim.max_clients = 64;
  lim.max_clients_per_peer = 64;
  lim.handshake_timeout_s = 2;
  auto server = StartServer(lim);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t idler = InChild([&] {
    std::vector<int> fds;
    for (int i = 0; i < 64; ++i) {
      fds.push_back(testing::RawConnect(socket_));
      if (fds.back() < 0) return 10;
    }
    if (write(ready[1], "r", 1) != 1) return 11;
    for (int fd : fds) {
      auto r = NextReply(fd);  // sends nothing, then learns why it was closed
      if (!r.ok()) return 12;
      const Status why = ReplyStatus(r->payload);
      if (why.code() != vmm::StatusCode::kUnavailable ||
          why.message().find("handshake deadline") == std::string::npos) {
        std::fprintf(stderr, "idle connection told: %s\n", why.ToString().c_str());
        return 13;
      }
      if (NextReply(fd).status().code() != vmm::StatusCode::kUnavailable) return 14;  // closed
      close(fd);
    }
    return 0;
  });
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  auto client = ConnectWhenAdmitted(socket_);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto att = (*client)->Attach();
  ASSERT_TRUE(att.ok()) << att.status().ToString();
  EXPECT_NE((*att)->Find("embed", 0), nullptr);
  EXPECT_EQ(Join(idler), 0);
  EXPECT_EQ(server->handshake_timeouts(), 64u);
  // Established by its ping, the real client outlived the deadline of the idle ones.
  EXPECT_TRUE((*client)->Call(R"({"op":"stats"})").ok());
  close(ready[0]);
  close(ready[1]);
}

// max_clients_per_peer: the N+1th connection of one process is refused naming the limit and the
// process, while another process still connects; max_clients then refuses naming its limit.
TEST_F(AdmissionTest, PerPeerCapRefusesOneProcessNotOthers) {
  ConnectionLimits lim;
  lim.max_clients = 5;
  lim.max_clients_per_peer = 3;
  lim.handshake_timeout_s = 60;
  lim.idle_timeout_s = 0;  // never reclaim: the limits alone
  auto server = StartServer(lim);
  std::vector<std::unique_ptr<HmmClient>> mine;
  for (int i = 0; i < 3; ++i) {
    auto c = HmmClient::Connect(socket_);
    ASSERT_TRUE(c.ok()) << i << ": " << c.status().ToString();
    mine.push_back(std::move(*c));
  }
  auto fourth = HmmClient::Connect(socket_);
  ASSERT_EQ(fourth.status().code(), vmm::StatusCode::kResourceExhausted);
  const std::string& why = fourth.status().message();
  EXPECT_NE(why.find("pid " + std::to_string(getpid())), std::string::npos) << why;
  EXPECT_NE(why.find("max_clients_per_peer 3"), std::string::npos) << why;
  const pid_t other = InChild([&] {
    std::vector<std::unique_ptr<HmmClient>> theirs;
    for (int i = 0; i < 2; ++i) {
      auto c = HmmClient::Connect(socket_);
      if (!c.ok() || !(*c)->Attach().ok()) return 10 + i;
      theirs.push_back(std::move(*c));
    }
    // 5 open now: the server's own limit, named with this process.
    auto full = HmmClient::Connect(socket_);
    const std::string& m = full.status().message();
    if (full.status().code() != vmm::StatusCode::kResourceExhausted ||
        m.find("max_clients 5") == std::string::npos ||
        m.find("pid " + std::to_string(getpid())) == std::string::npos) {
      std::fprintf(stderr, "full server said: %s\n", full.status().ToString().c_str());
      return 12;
    }
    return 0;
  });
  EXPECT_EQ(Join(other), 0);
  // The refusals took nothing from the admitted.
  for (auto& c : mine) EXPECT_TRUE(c->Call(R"({"op":"ping"})").ok());
  EXPECT_EQ(server->connections_refused(), 2u);
  // A closed connection gives its slot back.
  mine.pop_back();
  auto again = ConnectWhenAdmitted(socket_);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

// Long-lived idle clients that matter are never reaped: one holding KV memory, one attached, the
// adopted control connection; an idle one holding nothing stays while there is room, and gives
// its slot to a newcomer only when the server is full, learning why on its next request.
TEST_F(AdmissionTest, OnlyIdleConnectionsHoldingNothingMakeRoom) {
  ConnectionLimits lim;
  lim.max_clients = 3;
  lim.max_clients_per_peer = 3;
  lim.handshake_timeout_s = 60;
  lim.idle_timeout_s = 0.2;
  auto server = StartServer(lim);
  const int kv = testing::RawConnect(socket_);
  ASSERT_GE(kv, 0);
  ASSERT_TRUE(SendRequest(kv, R"({"op":"kv_alloc","device":0,"bytes":4096})").ok());
  auto r = NextReply(kv);
  ASSERT_TRUE(r.ok() && ReplyStatus(r->payload).ok()) << (r.ok() ? r->payload : "");
  auto idle = HmmClient::Connect(socket_);
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  // Idle well past the timeout, but there is room: nothing is closed.
  std::this_thread::sleep_for(std::chrono::duration<double>(3 * lim.idle_timeout_s));
  EXPECT_TRUE((*idle)->Call(R"({"op":"ping"})").ok());
  auto attached = HmmClient::Connect(socket_);
  ASSERT_TRUE(attached.ok()) << attached.status().ToString();
  auto att = (*attached)->Attach();
  ASSERT_TRUE(att.ok()) << att.status().ToString();
  // Full; the control connection is outside the limits.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  ASSERT_TRUE(server->Adopt(vmm::UniqueFd(sv[1])).ok());
  // The newcomer gets in once `idle` has been idle long enough: it is the one closed.
  auto newcomer = ConnectWhenAdmitted(socket_);
  ASSERT_TRUE(newcomer.ok()) << newcomer.status().ToString();
  EXPECT_EQ(server->connections_reclaimed(), 1u);
  auto gone = (*idle)->Call(R"({"op":"ping"})");
  EXPECT_EQ(gone.status().code(), vmm::StatusCode::kUnavailable);
  EXPECT_NE(gone.status().message().find("idle_timeout_s"), std::string::npos)
      << gone.status().ToString();
  // The others kept their connections (and the KV memory its owner).
  ASSERT_TRUE(SendRequest(kv, R"({"op":"kv_free","id":1})").ok());
  r = NextReply(kv);
  EXPECT_TRUE(r.ok() && ReplyStatus(r->payload).ok()) << (r.ok() ? r->payload : "");
  EXPECT_TRUE((*attached)->Call(R"({"op":"stats"})").ok());
  ASSERT_TRUE(SendRequest(sv[0], R"({"op":"ping"})").ok());
  r = NextReply(sv[0]);
  EXPECT_TRUE(r.ok() && ReplyStatus(r->payload).ok());
  close(kv);
  close(sv[0]);
}

// The handshake deadline counts until a request is answered OK: bad requests do not establish a
// connection, a request stalled mid-way does not hold it open, a ping does.
TEST_F(AdmissionTest, HandshakeDeadlineClosesOnlyUnestablishedConnections) {
  ConnectionLimits lim;
  lim.handshake_timeout_s = 2;  // the ping below comes well within it
  auto server = StartServer(lim);
  auto pinged = HmmClient::Connect(socket_);
  ASSERT_TRUE(pinged.ok()) << pinged.status().ToString();
  const int bad = testing::RawConnect(socket_);
  ASSERT_GE(bad, 0);
  ASSERT_TRUE(vmm::SendFds(bad, "not json", {}).ok());
  auto r = NextReply(bad);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReplyStatus(r->payload).code(), vmm::StatusCode::kInvalidArgument);
  const int stalled = testing::RawConnect(socket_);
  ASSERT_GE(stalled, 0);
  ASSERT_TRUE(vmm::SendFds(stalled, "1{\"op\":", {}).ok());  // more parts announced, none sent
  r = NextReply(bad);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(ReplyStatus(r->payload).message().find("handshake deadline"), std::string::npos)
      << r->payload;
  EXPECT_EQ(NextReply(bad).status().code(), vmm::StatusCode::kUnavailable) << "closed";
  r = NextReply(stalled);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(ReplyStatus(r->payload).message().find("handshake deadline"), std::string::npos)
      << r->payload;
  EXPECT_EQ(NextReply(stalled).status().code(), vmm::StatusCode::kUnavailable) << "closed";
  // The pinged connection is established: past the deadline, it still works.
  EXPECT_TRUE((*pinged)->Call(R"({"op":"stats"})").ok());
  EXPECT_GE(server->handshake_timeouts(), 1u);
  close(bad);
  close(stalled);
}

TEST_F(AdmissionTest, BadLimitsAreRefusedByName) {
  struct Case {
    ConnectionLimits lim;
    const char* field;
  };
  std::vector<Case> cases(5);
  cases[0].lim.max_clients = 0;
  cases[0].field = "max_clients is 0";
  cases[1].lim.max_clients_per_peer = 65;
  cases[1].field = "max_clients_per_peer is 65";
  cases[2].lim.handshake_timeout_s = 0;
  cases[2].field = "handshake_timeout_s";
  cases[3].lim.idle_timeout_s = -1;
  cases[3].field = "idle_timeout_s";
  cases[4].lim.handshake_timeout_s = std::nan("");
  cases[4].field = "handshake_timeout_s";
  for (const Case& c : cases) {
    ServerOptions o;
    o.socket_path = socket_;
    o.limits = c.lim;
    HmmServer server(hmm_.get(), o);
    const Status s = server.Start();
    EXPECT_EQ(s.code(), vmm::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace emoe::hbm
