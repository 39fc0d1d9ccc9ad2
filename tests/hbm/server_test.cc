// hmmd protocol: zero-copy attach in-process and from other processes, read-only enforcement,
// writes both ways when allowed, robustness against bad and dying clients, uid checks.
#include "hbm/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>

#include "hbm/client.h"
#include "test_files.h"

namespace emoe::hbm {
namespace {

using testing::ScratchDir;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeHmm(/*seal_weights=*/true); }

  // The HMM under test: two devices, everything replicated on both. Weights are sealed against
  // writes unless `seal_weights` is false (what hmmd --allow_writable does).
  void MakeHmm(bool seal_weights) {
    hmm_.reset();
    written_ = {
        {"embed", DType::kBF16, {512, 512}, testing::RandomBytes(512 * 512 * 2, 1)},
        {"layers.0.mlp.experts.0.w1", DType::kF32, {256, 1024}, testing::RandomBytes(1 << 20, 2)},
    };
    ASSERT_TRUE(WriteSafetensors(dir_.File("m.safetensors"), written_).ok());
    auto ckpt = OpenCheckpoint(dir_.File("m.safetensors"));
    ASSERT_TRUE(ckpt.ok());
    HmmOptions o;
    o.memory.usage_bytes = {8 << 20, 0, 1 << 20};
    o.memory.page_size = vmm::PageSizePolicy::kSmall;  // smaps reports PSS for these
    o.memory.seal_weights = seal_weights;
    std::vector<DeviceSpec> specs(2);
    for (int i = 0; i < 2; ++i) {
      specs[i].id = i;
      specs[i].cpus = {0};
      specs[i].capacity_bytes = 16 << 20;
    }
    auto hmm = Hmm::CreateWithDevices(specs, o);
    ASSERT_TRUE(hmm.ok()) << hmm.status().ToString();
    hmm_ = std::move(*hmm);
    ASSERT_TRUE(hmm_->LoadCheckpoint(*ckpt, ReplicateEverywhere({0, 1})).ok());
    socket_ = dir_.File("hmmd.sock");
  }

  std::unique_ptr<HmmServer> StartServer(ServerOptions o = {}) {
    o.socket_path = socket_;
    auto s = std::make_unique<HmmServer>(hmm_.get(), o);
    vmm::Status st = s->Start();
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }

  // Runs `child` in a forked process; returns its exit code (128+signal if killed).
  static int InChild(const std::function<int()>& child) {
    const pid_t pid = fork();
    if (pid == 0) _exit(child());
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  ScratchDir dir_;
  std::vector<TensorToWrite> written_;
  std::unique_ptr<Hmm> hmm_;
  std::string socket_;
};

TEST_F(ServerTest, InProcessAttachIsZeroCopy) {
  auto sealed = HmmClient::InProcess(hmm_.get())->Attach(-1, /*writable=*/true);
  EXPECT_EQ(sealed.status().code(), vmm::StatusCode::kFailedPrecondition);
  EXPECT_NE(sealed.status().message().find("sealed against writes"), std::string::npos)
      << sealed.status().message();
  MakeHmm(/*seal_weights=*/false);
  auto client = HmmClient::InProcess(hmm_.get());
  auto att = client->Attach(-1, /*writable=*/true);
  ASSERT_TRUE(att.ok()) << att.status().ToString();
  ASSERT_EQ((*att)->tensors().size(), 4u);
  const TensorView* v = (*att)->Find("embed", 1);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(std::memcmp(v->data, written_[0].bytes.data(), v->size_bytes), 0);
  auto rec = hmm_->Find("embed", 1);
  ASSERT_TRUE(rec.ok());
  EXPECT_NE(v->data, rec->data()) << "a mapping of its own";
  const_cast<uint8_t*>(static_cast<const uint8_t*>(v->data))[3] ^= 0xff;
  EXPECT_EQ(static_cast<const uint8_t*>(rec->data())[3],
            static_cast<uint8_t>(written_[0].bytes[3] ^ 0xff))
      << "the same pages, not a copy";
}

TEST_F(ServerTest, OtherProcessAttachesReadOnlyAndSharesPages) {
  auto server = StartServer();
  const int rc = InChild([&] {
    auto client = HmmClient::Connect(socket_);
    if (!client.ok()) return 10;
    auto att = (*client)->Attach(0);
    if (!att.ok()) return 11;
    const TensorView* v = (*att)->Find("layers.0.mlp.experts.0.w1", 0);
    if (v == nullptr || v->size_bytes != (1u << 20)) return 12;
    if (std::memcmp(v->data, written_[1].bytes.data(), v->size_bytes) != 0) return 13;
    // Read-only is enforced by the kernel: the fd is a read-only file description.
    void* page = const_cast<void*>(v->data);
    page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(page) & ~uintptr_t{4095});
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0 || errno != EACCES) return 14;
    if ((*client)->Attach(0, /*writable=*/true).status().code() !=
        vmm::StatusCode::kPermissionDenied) {
      return 15;
    }
    // Shared pages: this process's PSS for the weights is a fraction of their size.
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    char want[32];
    std::snprintf(want, sizeof(want), "%lx-",
                  reinterpret_cast<unsigned long>((*att)->Find("embed", 0)->data) & ~0xfffUL);
    long rss = -1, pss = -1;
    bool in = false;
    while (std::getline(smaps, line)) {
      if (line.find("-") != std::string::npos && line.find(" r--s ") != std::string::npos) {
        in = line.find("dev0.weights") != std::string::npos;
      }
      if (in && line.rfind("Rss:", 0) == 0) rss = std::atol(line.c_str() + 4);
      if (in && line.rfind("Pss:", 0) == 0) {
        pss = std::atol(line.c_str() + 4);
        break;
      }
    }
    if (rss < 1024) return 16;          // ~1.5 MiB of weights touched
    if (pss * 10 > rss * 6) return 17;  // shared with the HMM: about half
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child step " << rc << " failed";
  EXPECT_GE(server->connections_accepted(), 1u);
}

TEST_F(ServerTest, WritesAreSeenBothWaysWhenAllowed) {
  MakeHmm(/*seal_weights=*/false);
  ServerOptions o;
  o.allow_writable = true;
  auto server = StartServer(o);
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  auto rec = hmm_->Find("embed", 0);
  ASSERT_TRUE(rec.ok());
  auto* hmm_bytes = const_cast<uint8_t*>(static_cast<const uint8_t*>(rec->data()));
  const pid_t pid = fork();
  if (pid == 0) {
    auto client = HmmClient::Connect(socket_);
    if (!client.ok()) _exit(10);
    auto att = (*client)->Attach(0, true);
    if (!att.ok()) _exit(11);
    auto* p = const_cast<uint8_t*>(static_cast<const uint8_t*>((*att)->Find("embed", 0)->data));
    p[100] = 0x5a;  // child -> HMM
    char c = 1;
    if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(12);
    _exit(p[200] == 0xa5 ? 0 : 13);  // HMM -> child
  }
  char c;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  EXPECT_EQ(hmm_bytes[100], 0x5a);
  hmm_bytes[200] = 0xa5;
  ASSERT_EQ(write(to_child[1], &c, 1), 1);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) close(fd);
}

// The /proc/self/fd reopen: an attached client reopens the weight memfd it received O_RDWR and
// still cannot map it writable nor write it (the seal, not the file description, refuses); the
// KV arena it received stays writable; a writable attach is refused even by a server that allows
// it, since the arenas are sealed.
TEST_F(ServerTest, AttachedClientCannotReopenWeightsWritable) {
  ServerOptions so;
  so.allow_writable = true;
  auto server = StartServer(so);
  auto rec = hmm_->Find("embed", 0);
  ASSERT_TRUE(rec.ok());
  auto* hmm_bytes = const_cast<uint8_t*>(static_cast<const uint8_t*>(rec->data()));
  const int rc = InChild([&] {
    auto client = HmmClient::Connect(socket_);
    if (!client.ok()) return 10;
    if ((*client)->Attach(0, /*writable=*/true).status().code() !=
        vmm::StatusCode::kFailedPrecondition) {
      return 11;
    }
    auto att = (*client)->Attach(0, /*writable=*/false, /*kv=*/true);
    if (!att.ok()) return 12;
    const TensorView* v = (*att)->Find("embed", 0);
    if (v == nullptr) return 13;
    const int weights_fd = (*att)->arena(v->arena)->fd();
    const std::string path = "/proc/self/fd/" + std::to_string(weights_fd);
    const int rw = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (rw < 0) return 14;  // the reopen itself is allowed; what it gives is not
    errno = 0;
    if (mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) != MAP_FAILED) return 15;
    if (errno != EPERM) return 16;
    if (pwrite(rw, "x", 1, 0) != -1 || errno != EPERM) return 17;
    const off_t page = static_cast<off_t>(v->offset & ~uint64_t{4095});
    void* ro = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, rw, page);
    if (ro == MAP_FAILED) return 18;
    if (mprotect(ro, 4096, PROT_READ | PROT_WRITE) == 0) return 19;
    const auto* mine = static_cast<const uint8_t*>(v->data) - (v->offset - page);
    if (std::memcmp(ro, mine, 4096) != 0) return 20;  // the same pages, readable
    munmap(ro, 4096);
    close(rw);
    // The KV arena is not sealed: instances write it.
    if ((*att)->kv_base(0) == nullptr) return 21;
    (*att)->kv_base(0)[0] = 0x77;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child step " << rc << " failed";
  EXPECT_TRUE(hmm_->device(0).arena(Usage::kWeights)->write_sealed());
  hmm_bytes[0] ^= 0xff;  // hmmd's own direct map still writes
  EXPECT_EQ(static_cast<const uint8_t*>(rec->data())[0],
            static_cast<uint8_t>(written_[0].bytes[0] ^ 0xff));
}

TEST_F(ServerTest, BadAndDyingClientsDoNotHurtOthers) {
  auto server = StartServer();
  // A client that dies right after asking for an attach (the reply has fds in flight).
  for (int i = 0; i < 3; ++i) {
    const int rc = InChild([&] {
      const int fd = testing::RawConnect(socket_);
      if (fd < 0) return 10;
      if (!vmm::SendFds(fd, R"({"op":"attach"})", {}).ok()) return 11;
      raise(SIGKILL);
      return 12;
    });
    EXPECT_EQ(rc, 128 + SIGKILL);
  }
  // Malformed, oversized and wrongly typed requests get errors; the connection stays usable.
  const int fd = testing::RawConnect(socket_);
  ASSERT_GE(fd, 0);
  for (const std::string& bad :
       {std::string("not json"), std::string(R"({"op":42})"), std::string(R"({"op":"fly"})"),
        std::string(R"({"op":"list","device":"x"})"), std::string(kMaxRequestBytes + 10, '{'),
        std::string(R"({"op":"release","name":"nope","device":0})")}) {
    ASSERT_TRUE(vmm::SendFds(fd, bad, {}).ok());
    auto r = ReceiveReply(fd);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_NE(r->payload.find(R"("ok":false)"), std::string::npos) << r->payload;
  }
  // Control ops with missing or wrongly typed fields: INVALID_ARGUMENT, nothing done.
  for (const std::string& bad : {
           std::string(R"({"op":"load","checkpoint":5,"placement":[]})"),
           std::string(R"({"op":"load","checkpoint":"x"})"),
           std::string(R"({"op":"load","checkpoint":"x","placement":[{"name":"embed",)"
                       R"("usage":"gpu","devices":[0]}]})"),
           std::string(R"({"op":"load","checkpoint":"x","placement":[{"name":"embed",)"
                       R"("usage":"weights","devices":[0, "1"]}]})"),
           std::string(R"({"op":"load","checkpoint":"x","placement":[{"name":"embed",)"
                       R"("usage":"weights","devices":[0]},{"name":"embed",)"
                       R"("usage":"weights","devices":[1]}]})"),
           std::string(R"({"op":"copy_group","names":"embed","from":0,"to":1,"usage":"weights"})"),
           std::string(R"({"op":"copy_group","names":["embed"],"from":0,"usage":"weights"})"),
           std::string(R"({"op":"find","name":"embed","device":"0"})"),
           std::string(R"({"op":"find","name":"embed","device":4294967296})"),
           std::string(R"({"op":"release_many","records":[["embed"]]})"),
           std::string(R"({"op":"release_many","records":[[1, "embed"]]})"),
           std::string(R"({"op":"release_matching","devices":[1]})"),  // no prefix: not "all"
           std::string(R"({"op":"kv_alloc","device":0,"bytes":-1})"),
           std::string(R"({"op":"kv_alloc","device":0})"),
           std::string(R"({"op":"kv_free","id":"1"})"),
           std::string(R"({"op":"attach","tensors":1})"),
       }) {
    ASSERT_TRUE(vmm::SendFds(fd, bad, {}).ok());
    auto r = ReceiveReply(fd);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(ReplyStatus(r->payload).code(), vmm::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(hmm_->Find("embed", 1).ok()) << "nothing was released";
  EXPECT_TRUE(hmm_->Find("embed", 0).ok()) << "nothing was released";
  ASSERT_TRUE(vmm::SendFds(fd, R"({"op":"ping"})", {}).ok());
  auto pong = ReceiveReply(fd);
  ASSERT_TRUE(pong.ok());
  EXPECT_NE(pong->payload.find(R"("ok":true)"), std::string::npos);
  close(fd);
  // Others are served normally.
  auto client = HmmClient::Connect(socket_);
  ASSERT_TRUE(client.ok());
  auto att = (*client)->Attach();
  ASSERT_TRUE(att.ok()) << att.status().ToString();
  EXPECT_EQ((*att)->tensors().size(), 4u);
  auto stats = (*client)->Call(R"({"op":"stats"})");
  ASSERT_TRUE(stats.ok());
  EXPECT_NE(stats->find("used_bytes"), std::string::npos);
  ASSERT_TRUE((*client)->Release("embed", 1).ok());
  EXPECT_EQ((*client)->Release("embed", 1).code(), vmm::StatusCode::kNotFound);
}

TEST_F(ServerTest, FramedRequests) {
  auto server = StartServer();
  const int fd = testing::RawConnect(socket_);
  ASSERT_GE(fd, 0);
  // A request beyond one message, in parts.
  const std::string big =
      R"({"op":"find","name":"embed","device":1,"pad":")" + std::string(150000, 'x') + R"("})";
  ASSERT_TRUE(SendRequest(fd, big).ok());
  auto r = ReceiveReply(fd);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(ReplyStatus(r->payload).ok()) << r->payload;
  EXPECT_NE(r->payload.find(R"("size":524288)"), std::string::npos) << r->payload;
  // A raw one of the same size is refused, and so is a framed one beyond the cap (read to its
  // end, so the connection stays in step).
  ASSERT_TRUE(vmm::SendFds(fd, std::string(20000, ' ') + "{}", {}).ok());
  r = ReceiveReply(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReplyStatus(r->payload).code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_EQ(SendRequest(fd, std::string(kMaxAssembledRequestBytes + 1, ' ')).code(),
            vmm::StatusCode::kInvalidArgument);
  ASSERT_TRUE(SendReply(fd, Reply{std::string(kMaxAssembledRequestBytes + 1, ' '), {}}).ok());
  r = ReceiveReply(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReplyStatus(r->payload).code(), vmm::StatusCode::kInvalidArgument) << r->payload;
  ASSERT_TRUE(SendRequest(fd, R"({"op":"ping"})").ok());
  r = ReceiveReply(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(ReplyStatus(r->payload).ok());
  // A part without its framing byte mid-request: the stream is lost, the server hangs up.
  ASSERT_TRUE(vmm::SendFds(fd, "1{\"op\":", {}).ok());
  ASSERT_TRUE(vmm::SendFds(fd, "\"ping\"}", {}).ok());
  r = ReceiveReply(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReplyStatus(r->payload).code(), vmm::StatusCode::kInvalidArgument) << r->payload;
  EXPECT_EQ(ReceiveReply(fd).status().code(), vmm::StatusCode::kUnavailable);
  close(fd);
}

TEST_F(ServerTest, KvMemoryBelongsToTheConnection) {
  // Without a connection (in process), there is nobody to own it.
  Reply in_process = HandleRequest(*hmm_, R"({"op":"kv_alloc","device":0,"bytes":4096})", false);
  EXPECT_EQ(ReplyStatus(in_process.json).code(), vmm::StatusCode::kFailedPrecondition);
  auto kv_used = [&] { return hmm_->Stats()[0].usage[static_cast<int>(Usage::kKv)].used_bytes; };
  auto server = StartServer();
  const int fd = testing::RawConnect(socket_);
  ASSERT_GE(fd, 0);
  auto call = [&](const std::string& req) {
    EXPECT_TRUE(SendRequest(fd, req).ok());
    auto r = ReceiveReply(fd);
    return r.ok() ? r->payload : r.status().ToString();
  };
  std::string a = call(R"({"op":"kv_alloc","device":0,"bytes":5000})");
  EXPECT_NE(a.find(R"("id":1)"), std::string::npos) << a;
  EXPECT_NE(a.find(R"("bytes":8192)"), std::string::npos) << a;
  EXPECT_NE(call(R"({"op":"kv_alloc","device":0,"bytes":4096})").find(R"("id":2)"),
            std::string::npos);
  EXPECT_EQ(kv_used(), 3 * 4096u);
  EXPECT_TRUE(ReplyStatus(call(R"({"op":"kv_free","id":1})")).ok());
  EXPECT_EQ(kv_used(), 4096u);
  EXPECT_EQ(ReplyStatus(call(R"({"op":"kv_free","id":1})")).code(), vmm::StatusCode::kNotFound);
  EXPECT_EQ(ReplyStatus(call(R"({"op":"kv_alloc","device":1,"bytes":2097152})")).code(),
            vmm::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReplyStatus(call(R"({"op":"kv_alloc","device":2,"bytes":1})")).code(),
            vmm::StatusCode::kInvalidArgument);
  // Another connection cannot free it.
  {
    const int other = testing::RawConnect(socket_);
    ASSERT_TRUE(SendRequest(other, R"({"op":"kv_free","id":2})").ok());
    auto r = ReceiveReply(other);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(ReplyStatus(r->payload).code(), vmm::StatusCode::kNotFound);
    close(other);
  }
  EXPECT_EQ(kv_used(), 4096u);
  close(fd);  // the rest goes with the connection
  for (int i = 0; i < 500 && kv_used() != 0; ++i) usleep(10000);
  EXPECT_EQ(kv_used(), 0u);
}

TEST_F(ServerTest, AdoptedConnection) {
  HmmServer server(hmm_.get(), ServerOptions{});  // no listening socket at all
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  std::promise<void> closed;
  ASSERT_TRUE(server.Adopt(vmm::UniqueFd(sv[1]), [&] { closed.set_value(); }).ok());
  ASSERT_TRUE(SendRequest(sv[0], R"({"op":"devices"})").ok());
  auto r = ReceiveReply(sv[0]);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(ReplyStatus(r->payload).ok()) << r->payload;
  EXPECT_NE(r->payload.find(R"("id":1)"), std::string::npos) << r->payload;
  ASSERT_TRUE(SendRequest(sv[0], R"({"op":"kv_alloc","device":1,"bytes":4096})").ok());
  r = ReceiveReply(sv[0]);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(ReplyStatus(r->payload).ok()) << r->payload;
  EXPECT_EQ(hmm_->Stats()[1].usage[static_cast<int>(Usage::kKv)].used_bytes, 4096u);
  close(sv[0]);
  ASSERT_EQ(closed.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(hmm_->Stats()[1].usage[static_cast<int>(Usage::kKv)].used_bytes, 0u)
      << "freed before on_close runs";
  // Not a socket, or a stream socket: refused.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  EXPECT_FALSE(server.Adopt(vmm::UniqueFd(p[0])).ok());
  close(p[1]);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  EXPECT_EQ(server.Adopt(vmm::UniqueFd(sv[1])).code(), vmm::StatusCode::kInvalidArgument);
  close(sv[0]);
  // Stop() ends an adopted connection without calling on_close.
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  bool called = false;
  ASSERT_TRUE(server.Adopt(vmm::UniqueFd(sv[1]), [&] { called = true; }).ok());
  server.Stop();
  EXPECT_FALSE(called);
  EXPECT_EQ(ReceiveReply(sv[0]).status().code(), vmm::StatusCode::kUnavailable);
  close(sv[0]);
}

TEST_F(ServerTest, OtherUidsAreRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
  // Mode 0600: the file system already refuses another uid.
  {
    auto server = StartServer();
    const int rc = InChild([&] {
      if (setgid(65534) != 0 || setuid(65534) != 0) return 10;
      return testing::RawConnect(socket_) < 0 && errno == EACCES ? 0 : 11;
    });
    EXPECT_EQ(rc, 0);
  }
  // World-connectable socket in a traversable directory: SO_PEERCRED refuses the uid.
  ASSERT_EQ(chmod(dir_.path().c_str(), 0711), 0);
  ServerOptions o;
  o.socket_mode = 0666;
  auto server = StartServer(o);
  const int rc = InChild([&] {
    if (setgid(65534) != 0 || setuid(65534) != 0) return 10;
    auto client = HmmClient::Connect(socket_);
    if (client.ok()) return 11;
    std::fprintf(stderr, "refused: %s\n", client.status().ToString().c_str());
    return client.status().code() == vmm::StatusCode::kPermissionDenied &&
                   client.status().message().find("uid 65534") != std::string::npos
               ? 0
               : 12;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_GE(server->connections_refused(), 1u);
}

}  // namespace
}  // namespace emoe::hbm
