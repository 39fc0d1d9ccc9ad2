// HmmControl's contract, run against both implementations: LocalHmmControl over an Hmm in this
// process and RemoteHmmControl driving a real hmmd child process. Then what only the remote one
// has: requests larger than one message, the daemon's lifetime tied to the control connection,
// a killed daemon, a daemon that cannot start, KV memory that outlives its control.
#include "hbm/remote_control.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ostream>
#include <thread>

#include "control_fixture.h"
#include "hbm/client.h"
#include "hbm/server.h"
#include "test_files.h"
#include "vmm/host.h"

namespace emoe::hbm {
namespace {

using vmm::StatusCode;

TEST_P(ControlTest, Devices) {
  ASSERT_EQ(control_->num_devices(), 2);
  for (int d = 0; d < 2; ++d) {
    EXPECT_EQ(control_->device_spec(d).id, d);
    EXPECT_EQ(control_->device_spec(d).node, vmm::NumaNodes().at(0).id);
    EXPECT_EQ(control_->device_spec(d).capacity_bytes, 16 * kMiB);
    EXPECT_FALSE(control_->device_spec(d).cpus.empty());
  }
  if (remote_ != nullptr) {
    EXPECT_GT(remote_->pid(), 0);
    EXPECT_TRUE(Exists(control_->socket_path())) << control_->socket_path();
    EXPECT_EQ(control_->local(), nullptr);
  } else {
    EXPECT_EQ(control_->local(), hmm_.get());
  }
}

TEST_P(ControlTest, LoadFindCopyRelease) {
  const std::vector<DeviceStats> base = Stats();
  ASSERT_EQ(base.size(), 2u);
  EXPECT_EQ(base[0].usage[static_cast<int>(Usage::kWeights)].name, "dev0.weights");
  EXPECT_EQ(base[1].usage[static_cast<int>(Usage::kKv)].capacity_bytes, kKvArena);
  EXPECT_EQ(base[1].usage[static_cast<int>(Usage::kExperts)].page_size, 4096u);
  EXPECT_EQ(base[1].usage[static_cast<int>(Usage::kExperts)].kind, vmm::PageKind::kSmall4K);
  EXPECT_EQ(base[0].capacity_bytes, 16 * kMiB);

  auto report = control_->Load(ckpt_, Table(), "");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->tensors, 8u);  // 2 dense x 2 devices + 4 expert tensors
  EXPECT_EQ(report->bytes_from_disk, 8192u + 400 + 4 * 8192);
  EXPECT_EQ(report->bytes_p2p, 8192u + 400);
  EXPECT_GE(report->disk.bytes, report->bytes_from_disk);  // aligned reads may read more
  EXPECT_GT(report->disk.reads, 0u);
  EXPECT_TRUE(report->disk.direct_io || !report->disk.fallback_reason.empty());

  auto embed = control_->Find("embed", 1);
  ASSERT_TRUE(embed.ok()) << embed.status().ToString();
  EXPECT_EQ(embed->name, "embed");
  EXPECT_EQ(embed->device, 1);
  EXPECT_EQ(embed->usage, Usage::kWeights);
  EXPECT_EQ(embed->dtype, DType::kBF16);
  EXPECT_EQ(embed->shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(embed->size_bytes, 8192u);
  auto w1 = control_->Find("layers.0.experts.0.w1", 0);
  auto w2 = control_->Find("layers.0.experts.0.w2", 0);
  ASSERT_TRUE(w1.ok() && w2.ok());
  EXPECT_EQ(w1->usage, Usage::kExperts);
  EXPECT_EQ(w1->extent_bytes, w2->extent_bytes) << "one extent per expert group";
  EXPECT_GE(w1->extent_bytes, 2 * 8192u);
  EXPECT_EQ(w1->extent_bytes % 4096, 0u);
  EXPECT_EQ(control_->Find("layers.0.experts.0.w1", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(control_->Find("nope", 0).status().code(), StatusCode::kNotFound);
  // The arenas account for exactly those extents.
  EXPECT_EQ(Used(0, Usage::kExperts), w1->extent_bytes);
  EXPECT_EQ(Used(1, Usage::kWeights), embed->extent_bytes);
  EXPECT_EQ(Stats()[1].usage[static_cast<int>(Usage::kWeights)].live_extents, 1u);

  // Expert 0 onto device 1: one new extent, both records.
  const uint64_t experts1 = Used(1, Usage::kExperts);
  auto copied = control_->CopyGroup({"layers.0.experts.0.w1", "layers.0.experts.0.w2"}, 0, 1,
                                    Usage::kExperts, "");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 2 * 8192u);
  auto c1 = control_->Find("layers.0.experts.0.w2", 1);
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->usage, Usage::kExperts);
  EXPECT_EQ(Used(1, Usage::kExperts), experts1 + c1->extent_bytes);
  // Again: already there, nothing registered, nothing allocated.
  const uint64_t used = TotalUsed();
  EXPECT_EQ(
      control_->CopyGroup({"layers.0.experts.0.w1"}, 0, 1, Usage::kExperts, "").status().code(),
      StatusCode::kAlreadyExists);
  // All or nothing: expert 1's w1 could go to device 0, but expert 0's is there already.
  EXPECT_EQ(
      control_
          ->CopyGroup({"layers.0.experts.1.w1", "layers.0.experts.0.w1"}, 1, 0, Usage::kExperts, "")
          .status()
          .code(),
      StatusCode::kAlreadyExists);
  EXPECT_EQ(control_->Find("layers.0.experts.1.w1", 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(TotalUsed(), used);
  EXPECT_EQ(control_->CopyGroup({"embed"}, 0, 7, Usage::kWeights, "").status().code(),
            StatusCode::kInvalidArgument);
  // A private copy under a prefix, alongside.
  auto priv = control_->CopyGroup({"layers.0.experts.0.w1"}, 0, 1, Usage::kExperts, "copy.");
  ASSERT_TRUE(priv.ok()) << priv.status().ToString();
  EXPECT_EQ(*priv, 8192u);
  EXPECT_TRUE(control_->Find("copy.layers.0.experts.0.w1", 1).ok());

  // Release: unknown records are skipped and not counted.
  auto released = control_->Release({{"embed", 0}, {"nope", 0}, {"embed", 1}, {"embed", 1}});
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_EQ(*released, 2u);
  EXPECT_EQ(control_->Find("embed", 0).status().code(), StatusCode::kNotFound);
  auto matched = control_->ReleaseMatching("layers.0.experts.0", {1});
  ASSERT_TRUE(matched.ok());
  EXPECT_EQ(*matched, 2u);  // not "copy.", not device 0
  EXPECT_TRUE(control_->Find("layers.0.experts.0.w1", 0).ok());
  EXPECT_EQ(control_->ReleaseMatching("copy.", {}).value(), 1u);
  EXPECT_EQ(control_->ReleaseMatching("", {}).value(), 6u);  // norm x2, experts 0 and 1 x2
  EXPECT_EQ(control_->ReleaseMatching("", {}).value(), 0u);
  const std::vector<DeviceStats> after = Stats();
  for (int d = 0; d < 2; ++d) {
    EXPECT_EQ(after[d].used_bytes, base[d].used_bytes) << "device " << d;
    EXPECT_GT(after[d].peak_used_bytes, base[d].peak_used_bytes) << "device " << d;
  }
}

TEST_P(ControlTest, SecondLoadNeedsAPrefix) {
  ASSERT_TRUE(control_->Load(ckpt_, Table(), "").ok());
  const uint64_t used = TotalUsed();
  EXPECT_EQ(control_->Load(ckpt_, Table(), "").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(TotalUsed(), used) << "a failed load frees what it allocated";
  PlacementTable one;
  one["embed"] = {Usage::kWeights, {1}, ""};
  auto r = control_->Load(ckpt_, one, "b.");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tensors, 1u);
  EXPECT_EQ(r->bytes_p2p, 0u);
  EXPECT_TRUE(control_->Find("b.embed", 1).ok());
  EXPECT_FALSE(control_->Find("b.norm", 1).ok()) << "unlisted tensors are skipped";
}

TEST_P(ControlTest, FailedLoadsLoadNothing) {
  PlacementTable t = Table();
  t["missing"] = {Usage::kWeights, {0}, ""};
  auto r = control_->Load(ckpt_, t, "");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find("missing"), std::string::npos);
  t = Table();
  t["embed"].devices = {0, 5};
  EXPECT_EQ(control_->Load(ckpt_, t, "").status().code(), StatusCode::kInvalidArgument);
  // The experts arena fills up part-way: everything allocated before goes back.
  t = Table();
  t["huge"] = {Usage::kExperts, {1}, "huge"};
  r = control_->Load(ckpt_, t, "");
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
  EXPECT_EQ(control_->Load(dir_.File("nope.safetensors"), Table(), "").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(control_->Find("embed", 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(TotalUsed(), 0u);
  EXPECT_EQ(control_->ReleaseMatching("", {}).value(), 0u);
  // And a good load still works afterwards (the cached checkpoint is the right one).
  auto ok = control_->Load(ckpt_, Table(), "");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->tensors, 8u);
}

TEST_P(ControlTest, KvMemory) {
  EXPECT_EQ(control_->AllocateKv(1, kKvArena + 4096).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(control_->AllocateKv(2, 4096).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(control_->AllocateKv(0, 0).status().code(), StatusCode::kInvalidArgument);
  auto a = control_->AllocateKv(1, 100000);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = control_->AllocateKv(1, 4096);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  KvMemory& ka = **a;
  KvMemory& kb = **b;
  EXPECT_EQ(ka.device, 1);
  ASSERT_NE(ka.base, nullptr);
  EXPECT_GE(ka.size_bytes, 100000u);
  EXPECT_EQ(ka.size_bytes % 4096, 0u);
  EXPECT_TRUE(ka.arena_offset + ka.size_bytes <= kb.arena_offset ||
              kb.arena_offset + kb.size_bytes <= ka.arena_offset)
      << "disjoint";
  EXPECT_EQ(Used(1, Usage::kKv), ka.size_bytes + kb.size_bytes);
  EXPECT_EQ(Used(0, Usage::kKv), 0u);

  // Written here, seen by an instance that attached the KV arenas, and back.
  const std::string pattern = testing::RandomBytes(100000, 9);
  std::memcpy(ka.base, pattern.data(), pattern.size());
  std::unique_ptr<HmmClient> client;
  if (remote_ != nullptr) {
    auto c = HmmClient::Connect(control_->socket_path());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client = std::move(*c);
  } else {
    client = HmmClient::InProcess(control_->local());
  }
  auto att = client->Attach(-1, false, /*kv=*/true);
  ASSERT_TRUE(att.ok()) << att.status().ToString();
  uint8_t* seen = (*att)->kv_base(1);
  ASSERT_NE(seen, nullptr);
  ASSERT_NE(seen + ka.arena_offset, ka.base) << "a mapping of its own";
  EXPECT_EQ(std::memcmp(seen + ka.arena_offset, pattern.data(), pattern.size()), 0);
  seen[kb.arena_offset + 17] = 0x5a;
  EXPECT_EQ(kb.base[17], 0x5a);

  // Copy on this side of the transport.
  ASSERT_TRUE(control_->Copy(1, kb.base, ka.base + 4096, 4096).ok());
  EXPECT_EQ(std::memcmp(seen + kb.arena_offset, pattern.data() + 4096, 4096), 0);
  EXPECT_EQ(control_->Copy(9, kb.base, ka.base, 16).code(), StatusCode::kInvalidArgument);

  const uint64_t b_bytes = kb.size_bytes;
  a->reset();
  EXPECT_EQ(Used(1, Usage::kKv), b_bytes);
  b->reset();
  EXPECT_EQ(Used(1, Usage::kKv), 0u);
  // The whole arena: the offsets are the arena's own.
  auto all = control_->AllocateKv(1, kKvArena);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ((*all)->arena_offset, 0u);
  EXPECT_EQ((*all)->size_bytes, kKvArena);
  (*all)->base[kKvArena - 1] = 0x77;
  EXPECT_EQ(seen[kKvArena - 1], 0x77);
  EXPECT_EQ(control_->AllocateKv(1, 4096).status().code(), StatusCode::kResourceExhausted);
}

// KV memory resizes in place at its end on either side of the transport: the data below the end
// and the addresses stay; growth needs the pages after it.
TEST_P(ControlTest, KvMemoryResizesInPlace) {
  auto a = control_->AllocateKv(1, 64 * 1024);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  KvMemory& k = **a;
  uint8_t* base = k.base;
  const uint64_t offset = k.arena_offset;
  const std::string pattern = testing::RandomBytes(16 * 1024, 5);
  std::memcpy(k.base, pattern.data(), pattern.size());
  ASSERT_TRUE(k.Resize(16 * 1024).ok());
  EXPECT_EQ(k.size_bytes, 16u * 1024);
  EXPECT_EQ(k.base, base);
  EXPECT_EQ(k.arena_offset, offset);
  EXPECT_EQ(Used(1, Usage::kKv), 16u * 1024);
  // Another allocation lands right after it: growth is refused and nothing changes.
  auto b = control_->AllocateKv(1, 4096);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ((*b)->arena_offset, offset + 16 * 1024);
  Status s = k.Resize(64 * 1024);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(k.size_bytes, 16u * 1024);
  b->reset();
  ASSERT_TRUE(k.Resize(64 * 1024).ok());
  EXPECT_EQ(k.size_bytes, 64u * 1024);
  EXPECT_EQ(Used(1, Usage::kKv), 64u * 1024);
  EXPECT_EQ(std::memcmp(k.base, pattern.data(), pattern.size()), 0);
  k.base[64 * 1024 - 1] = 1;  // the grown tail is this mapping's too
  EXPECT_EQ(k.Resize(kKvArena + 4096).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(k.Resize(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(k.size_bytes, 64u * 1024);
  a->reset();
  EXPECT_EQ(Used(1, Usage::kKv), 0u);
}

INSTANTIATE_TEST_SUITE_P(Both, ControlTest, ::testing::Values(Kind::kLocal, Kind::kRemote),
                         [](const ::testing::TestParamInfo<Kind>& i) {
                           return i.param == Kind::kLocal ? "Local" : "Remote";
                         });

// ------------------------------------------------------------------------------------------
// RemoteHmmControl only.

class RemoteTest : public ::testing::Test {
 protected:
  HmmdOptions Options() const {
    HmmdOptions o;
    o.binary = HMMD_PATH;
    o.hmm = SmallOptions();
    return o;
  }
  std::unique_ptr<RemoteHmmControl> Launch() {
    auto c = RemoteHmmControl::Launch(Options());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }
  testing::ScratchDir dir_;
};

TEST_F(RemoteTest, RequestsLargerThanOneMessage) {
  // 600 tiny tensors with long names: the placement, the copy's names and the release list are
  // each far beyond kMaxRequestBytes (the placement beyond one 60 KB part), so they travel in
  // parts.
  std::vector<TensorToWrite> t;
  PlacementTable table;
  std::vector<std::string> names;
  std::vector<std::pair<std::string, int>> records;
  size_t name_bytes = 0;
  for (int i = 0; i < 600; ++i) {
    char name[160];
    std::snprintf(name, sizeof(name),
                  "model.layers.%03d.mlp.a_rather_long_module_name_to_make_requests_large.weight",
                  i);
    t.push_back({name, DType::kF32, {4}, testing::RandomBytes(16, i)});
    table[name] = {Usage::kWeights, {0}, ""};
    names.push_back(name);
    records.emplace_back(name, 0);
    records.emplace_back(name, 1);
    name_bytes += std::strlen(name);
  }
  ASSERT_GT(name_bytes, 40000u);
  ASSERT_TRUE(WriteSafetensors(dir_.File("many.safetensors"), t).ok());
  auto c = Launch();
  ASSERT_TRUE(c);
  auto r = c->Load(dir_.File("many.safetensors"), table, "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tensors, 600u);
  EXPECT_EQ(r->bytes_from_disk, 600u * 16);
  auto last = c->Find(names.back(), 0);
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(last->size_bytes, 16u);
  auto copied = c->CopyGroup(names, 0, 1, Usage::kWeights, "");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 600u * 16);
  auto released = c->Release(records);
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_EQ(*released, 1200u);
  // The connection is still in step.
  auto stats = c->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ((*stats)[0].used_bytes + (*stats)[1].used_bytes, 0u);
}

TEST_F(RemoteTest, DestroyingTheControlStopsHmmd) {
  auto c = Launch();
  ASSERT_TRUE(c);
  const pid_t pid = c->pid();
  const std::string socket = c->socket_path();
  ASSERT_TRUE(Exists(socket));
  ASSERT_EQ(kill(pid, 0), 0);
  c.reset();
  EXPECT_FALSE(Exists(socket)) << "hmmd removes its socket when it stops";
  errno = 0;
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1) << "already reaped";
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(RemoteTest, HmmdStopsWhenItsLauncherDies) {
  // A launcher that dies without cleaning up: hmmd, reparented to us (a subreaper), must stop
  // on its own, cleanly.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const pid_t launcher = fork();
  if (launcher == 0) {
    auto c = RemoteHmmControl::Launch(Options());
    pid_t pid = c.ok() ? (*c)->pid() : -1;
    if (write(p[1], &pid, sizeof(pid)) != sizeof(pid)) _exit(2);
    _exit(c.ok() ? 0 : 1);  // no destructors: the control connection just closes
  }
  close(p[1]);
  pid_t hmmd = -1;
  ASSERT_EQ(read(p[0], &hmmd, sizeof(hmmd)), static_cast<ssize_t>(sizeof(hmmd)));
  close(p[0]);
  int status = 0;
  ASSERT_EQ(waitpid(launcher, &status, 0), launcher);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_GT(hmmd, 0);
  pid_t reaped = 0;
  for (int i = 0; i < 3000 && reaped == 0; ++i) {  // up to 30 s
    reaped = waitpid(hmmd, &status, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (reaped == 0) {
    kill(hmmd, SIGKILL);
    waitpid(hmmd, &status, 0);
    FAIL() << "hmmd did not stop after its launcher died";
  }
  ASSERT_EQ(reaped, hmmd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "exited " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ", signal "
      << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(RemoteTest, KilledHmmdIsUnavailable) {
  auto c = Launch();
  ASSERT_TRUE(c);
  auto kv = c->AllocateKv(0, 8192);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  ASSERT_EQ(kill(c->pid(), SIGKILL), 0);
  auto s = c->Stats();
  ASSERT_EQ(s.status().code(), StatusCode::kUnavailable) << s.status().ToString();
  const std::string who = "hmmd (pid " + std::to_string(c->pid()) + ")";
  EXPECT_NE(s.status().message().find(who + ": connection lost"), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("killed by signal 9"), std::string::npos)
      << s.status().message();
  auto f = c->Find("embed", 0);
  EXPECT_EQ(f.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(f.status().message().find(who), std::string::npos);
  EXPECT_EQ(c->AllocateKv(0, 4096).status().code(), StatusCode::kUnavailable);
  // The KV memory this process maps stays usable; freeing it is harmless.
  (*kv)->base[100] = 1;
  kv->reset();
  const std::string socket = c->socket_path();
  EXPECT_TRUE(Exists(socket)) << "a killed hmmd leaves its socket file";
  c.reset();  // reaps nothing twice, does not hang
  EXPECT_FALSE(Exists(socket)) << "removed for it";
}

TEST_F(RemoteTest, KvMemoryOutlivesItsControl) {
  auto c = Launch();
  ASSERT_TRUE(c);
  auto kv = c->AllocateKv(1, 4096);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  (*kv)->base[0] = 42;
  c.reset();
  EXPECT_EQ((*kv)->base[0], 42);
  (*kv)->base[4095] = 7;
  kv->reset();
}

TEST_F(RemoteTest, KvMemoryBelongsToItsConnection) {
  auto c = Launch();
  ASSERT_TRUE(c);
  auto other = RemoteHmmControl::Connect(c->socket_path());
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ((*other)->pid(), 0);
  EXPECT_EQ((*other)->num_devices(), 2);
  EXPECT_EQ((*other)->page_note(), c->page_note());
  auto kv = (*other)->AllocateKv(0, 3 * 4096);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  auto used = [&] { return c->Stats().value()[0].usage[static_cast<int>(Usage::kKv)].used_bytes; };
  EXPECT_EQ(used(), 3 * 4096u);
  // Not freed by its owner (no kv_free): closing the connection frees it.
  std::unique_ptr<KvMemory> abandoned = std::move(*kv);
  other->reset();
  for (int i = 0; i < 500 && used() != 0; ++i) {  // hmmd notices the close asynchronously
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(used(), 0u);
  abandoned.reset();  // only now: its kv_free finds the connection closed, which it ignores
}

TEST_F(RemoteTest, LaunchErrors) {
  // A flag hmmd refuses: it exits before answering.
  HmmdOptions o = Options();
  o.extra_args = {"--page_size=bogus"};
  auto c = RemoteHmmControl::Launch(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(c.status().message().find("exited with status 2 before answering"), std::string::npos)
      << c.status().ToString();
  // hmmd starts but cannot create its devices: it answers with the error and its code.
  o = Options();
  o.hmm.devices.capacity_bytes = 1ull << 50;  // beyond the node's memory
  c = RemoteHmmControl::Launch(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << c.status().ToString();
  EXPECT_NE(c.status().message().find("hmmd: "), std::string::npos) << c.status().ToString();
  EXPECT_NE(c.status().message().find("do not fit in node"), std::string::npos)
      << c.status().ToString();
  // Refused before starting anything.
  o = Options();
  o.hmm.memory.usage_bytes[0] = kMiB + 1;
  c = RemoteHmmControl::Launch(o);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("MiB"), std::string::npos) << c.status().ToString();
  o = Options();
  o.binary = dir_.File("no-such-hmmd");
  EXPECT_FALSE(RemoteHmmControl::Launch(o).ok());
  o.binary = "";
  EXPECT_EQ(RemoteHmmControl::Launch(o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RemoteHmmControl::Connect(dir_.File("nobody.sock")).status().code(),
            StatusCode::kNotFound);
}

TEST_F(RemoteTest, SocketPathIsHonoured) {
  HmmdOptions o = Options();
  o.socket_path = dir_.File("mine.sock");
  auto c = RemoteHmmControl::Launch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->socket_path(), o.socket_path);
  EXPECT_TRUE(Exists(o.socket_path));
  auto client = HmmClient::Connect(o.socket_path);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
}

}  // namespace
}  // namespace emoe::hbm
