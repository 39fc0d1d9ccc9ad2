// Export/import across real processes: the fd goes over a UNIX socket with SCM_RIGHTS, and a
// write through one process's mapping is seen through the other's. Read-only exports and arenas
// sealed against future writes refuse every way of writing through an fd, reopened ones too.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "test_util.h"
#include "vmm/vmm.h"

namespace vmm {
namespace {

struct Pair {
  int parent = -1, child = -1;
  Pair() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
      parent = sv[0];
      child = sv[1];
    }
  }
  ~Pair() {
    if (parent >= 0) close(parent);
    if (child >= 0) close(child);
  }
};

// Child exit codes name the step that failed.
int ChildMain(int sock) {
  auto arena = ReceiveArena(sock, nullptr, /*direct_map=*/false);
  if (!arena.ok()) return 10;
  ReceivedMessage m;
  {
    auto r = RecvFds(sock, 0);
    if (!r.ok()) return 11;
    m = std::move(*r);
  }
  uint64_t offset = 0, len = 0;
  if (std::sscanf(m.payload.c_str(), "%lu %lu", &offset, &len) != 2) return 12;
  auto view = (*arena)->View(offset, len);
  if (!view.ok()) return 13;
  auto res = Reservation::Reserve(len);
  if (!res.ok()) return 14;
  if (!(*res)->Map(0, *view, 0, 0, {Protection::kReadWrite, true}).ok()) return 15;
  uint8_t* p = (*res)->base();
  for (uint64_t i = 0; i < len; i += 4096) {
    if (p[i] != 0xab) return 16;  // the parent's bytes, without a copy
  }
  p[len - 1] = 0xcd;  // seen by the parent
  if (!SendFds(sock, "done", {}).ok()) return 17;
  return 0;
}

TEST(ExportImportTest, ForkedChildSeesAndWritesTheSamePages) {
  for (PageSizePolicy policy :
       {PageSizePolicy::kSmall, PageSizePolicy::kShmemThp, PageSizePolicy::kHugetlb}) {
    std::string skip;
    auto arena = testing::MakeArena(policy, 8 << 20, &skip, "shared");
    if (!arena) continue;  // the 4K case always runs
    Extent e = *arena->Allocate(4 << 20);
    std::memset(e.data(), 0xab, e.size_bytes());
    Pair sp;
    ASSERT_GE(sp.parent, 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(sp.parent);
      _exit(ChildMain(sp.child));
    }
    ASSERT_TRUE(SendArena(sp.parent, *arena).ok());
    const std::string loc = std::to_string(e.offset_bytes()) + " " + std::to_string(e.size_bytes());
    ASSERT_TRUE(SendFds(sp.parent, loc, {}).ok());
    auto reply = RecvFds(sp.parent, 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << testing::PolicyName(policy) << ": child step failed";
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(static_cast<uint8_t*>(e.data())[e.size_bytes() - 1], 0xcd)
        << "the child's write must be visible here";
  }
}

TEST(FdPassingTest, SendAndReceiveSeveralFds) {
  Pair sp;
  std::string skip;
  auto a = testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "a");
  auto b = testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "b");
  ASSERT_TRUE(SendFds(sp.parent, "two", {a->fd(), b->fd()}).ok());
  auto m = RecvFds(sp.child);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->payload, "two");
  ASSERT_EQ(m->fds.size(), 2u);
  EXPECT_NE(m->fds[0].get(), a->fd()) << "a new descriptor for the same file";
}

TEST(FdPassingTest, TooManyFdsAreRefusedAndClosed) {
  Pair sp;
  std::string skip;
  auto a = testing::MakeArena(PageSizePolicy::kSmall, 1 << 20, &skip, "many");
  const int fds_before = testing::OpenFdCount();
  ASSERT_TRUE(SendFds(sp.parent, "three", {a->fd(), a->fd(), a->fd()}).ok());
  auto m = RecvFds(sp.child, 1);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
  EXPECT_EQ(testing::OpenFdCount(), fds_before) << "fds that did arrive must be closed";
}

TEST(FdPassingTest, BadInputAndClosedPeer) {
  Pair sp;
  EXPECT_EQ(SendFds(sp.parent, "", {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SendFds(sp.parent, std::string(kMaxPassedPayload + 1, 'x'), {}).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(SendFds(sp.parent, "not arena metadata", {}).ok());
  EXPECT_EQ(ReceiveArena(sp.child).status().code(), StatusCode::kDataLoss);
  close(sp.parent);
  sp.parent = -1;
  EXPECT_EQ(RecvFds(sp.child).status().code(), StatusCode::kUnavailable);
}

// ExportMode::kReadOnly: the fd is a read-only file description; the kernel refuses every way
// of writing through it (real syscalls, no mocks).
TEST(ExportImportTest, ReadOnlyExportRefusesWrites) {
  ArenaOptions o;
  o.name = "ro";
  o.capacity_bytes = 1 << 20;
  o.page_size = PageSizePolicy::kSmall;
  auto arena = Arena::Create(o);
  ASSERT_TRUE(arena.ok()) << arena.status().ToString();
  static_cast<uint8_t*>((*arena)->direct_map())[0] = 0x5a;
  auto ro = (*arena)->Export(ExportMode::kReadOnly);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  const int fd = ro->fd.get();
  EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  // A writable shared mapping: EACCES.
  errno = 0;
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_EQ(errno, EACCES);
  // A read-only one works, shows the owner's bytes and cannot be made writable.
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(static_cast<uint8_t*>(p)[0], 0x5a);
  errno = 0;
  EXPECT_NE(mprotect(p, 4096, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(errno, EACCES);
  munmap(p, 4096);
  // write(2): EBADF.
  errno = 0;
  EXPECT_EQ(pwrite(fd, "x", 1, 0), -1);
  EXPECT_EQ(errno, EBADF);
  // Imported read-only, a read mapping works and a read-write one is refused.
  ExportedArena e = std::move(*ro);
  auto imported = Arena::Import(std::move(e), nullptr, /*direct_map=*/false);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  auto res = Reservation::Reserve(1 << 20);
  ASSERT_TRUE(res.ok());
  auto all = (*imported)->View(0, 1 << 20);
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE((*res)->Map(0, *all, 0, 0, {Protection::kReadWrite, false}).ok());
  ASSERT_TRUE((*res)->Map(0, *all, 0, 0, {Protection::kRead, false}).ok());
  EXPECT_EQ((*res)->base()[0], 0x5a);
  // The default mode is the read-write dup it always was.
  auto rw = (*arena)->Export();
  ASSERT_TRUE(rw.ok());
  EXPECT_EQ(fcntl(rw->fd.get(), F_GETFL) & O_ACCMODE, O_RDWR);
}

// ArenaOptions::seal_future_writes: what the read-only export alone cannot stop, a process of the
// same uid reopening the memfd O_RDWR by path, gets a file the kernel will not let it map
// writable nor write (EPERM), while the arena's own direct map keeps writing. For every page
// kind the host provides (shmem 4 KiB and THP, hugetlb), populated or not.
TEST(ExportImportTest, SealedArenaRefusesWritesThroughAReopenedFd) {
  int kinds_run = 0;
  for (PageSizePolicy policy :
       {PageSizePolicy::kSmall, PageSizePolicy::kShmemThp, PageSizePolicy::kHugetlb}) {
    SCOPED_TRACE(testing::PolicyName(policy));
    ArenaOptions o;
    o.name = "sealed";
    o.capacity_bytes = 4 << 20;
    o.page_size = policy;
    o.seal_future_writes = true;
    o.populate = policy == PageSizePolicy::kShmemThp;  // the seal comes after the population
    auto arena = Arena::Create(o);
    if (arena.status().code() == StatusCode::kUnavailable) continue;  // the host lacks the kind
    ASSERT_TRUE(arena.ok()) << arena.status().ToString();
    ++kinds_run;
    ASSERT_TRUE((*arena)->write_sealed()) << (*arena)->seal_note();
    ASSERT_TRUE((*arena)->CheckInvariants().ok()) << (*arena)->CheckInvariants().ToString();
    EXPECT_NE(fcntl((*arena)->fd(), F_GET_SEALS) & F_SEAL_FUTURE_WRITE, 0);
    auto* direct = (*arena)->direct_map();
    // Faulting pages in after the seal, through the direct map, still works (a later populate).
    EXPECT_EQ(madvise(direct, (*arena)->capacity_bytes(), MADV_POPULATE_WRITE), 0)
        << strerror(errno);
    direct[0] = 0x5a;
    auto ro = (*arena)->Export(ExportMode::kReadOnly);
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    const std::string path = "/proc/self/fd/" + std::to_string(ro->fd.get());
    const int rw = open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(rw, 0) << "the reopen itself is allowed: " << strerror(errno);
    errno = 0;
    EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0), MAP_FAILED);
    EXPECT_EQ(errno, EPERM);
    errno = 0;
    EXPECT_EQ(pwrite(rw, "x", 1, 0), -1);
    // shmem: EPERM (the seal); hugetlbfs has no write(2) at all.
    if (policy != PageSizePolicy::kHugetlb) {
      EXPECT_EQ(errno, EPERM);
    }
    EXPECT_NE(fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
    // A read mapping of the reopened fd works, cannot be made writable, and sees what the
    // direct map writes after all this.
    void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, rw, 0);
    ASSERT_NE(p, MAP_FAILED) << strerror(errno);
    EXPECT_NE(mprotect(p, 4096, PROT_READ | PROT_WRITE), 0);
    direct[1] = 0xa5;
    EXPECT_EQ(static_cast<uint8_t*>(p)[0], 0x5a);
    EXPECT_EQ(static_cast<uint8_t*>(p)[1], 0xa5);
    munmap(p, 4096);
    close(rw);
    // The arena's own read-write fd is bound by the seal too.
    errno = 0;
    EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, (*arena)->fd(), 0),
              MAP_FAILED);
    EXPECT_EQ(errno, EPERM);
    // Allocation and release keep working (freed pages stay in the pool: no punch).
    auto e = (*arena)->Allocate(2 << 20);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::memset(e->data(), 0x11, e->size_bytes());
    e->Reset();
    EXPECT_EQ((*arena)->Stats().discarded_bytes, 0u);
    ASSERT_TRUE((*arena)->CheckInvariants().ok());
  }
  EXPECT_GE(kinds_run, 1) << "4 KiB pages are always available";
}

TEST(ExportImportTest, SealingOptionsAreCheckedAndAnOldKernelFallsBack) {
  ArenaOptions o;
  o.name = "sealed";
  o.capacity_bytes = 1 << 20;
  o.page_size = PageSizePolicy::kSmall;
  o.seal_future_writes = true;
  o.discard_on_free = true;
  auto r = Arena::Create(o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("PUNCH_HOLE"), std::string::npos) << r.status().message();
  o.discard_on_free = false;
  o.direct_map = false;
  r = Arena::Create(o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("direct_map"), std::string::npos) << r.status().message();
  // A kernel without F_SEAL_FUTURE_WRITE answers EINVAL: the arena is made unsealed and says why.
  // (fcntl calls of Create: 0 = shrink/grow seals, 1 = the write seal.)
  FaultInjectingOs os;
  os.FailNth(Syscall::kFcntl, 1, EINVAL);
  o.direct_map = true;
  o.os = &os;
  r = Arena::Create(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE((*r)->write_sealed());
  EXPECT_NE((*r)->seal_note().find("F_SEAL_FUTURE_WRITE"), std::string::npos);
  EXPECT_TRUE((*r)->CheckInvariants().ok()) << (*r)->CheckInvariants().ToString();
  EXPECT_EQ(fcntl((*r)->fd(), F_GET_SEALS) & F_SEAL_FUTURE_WRITE, 0);
  // Any other failure of the seal fails the creation.
  os.FailNth(Syscall::kFcntl, 1, ENOMEM);
  EXPECT_EQ(Arena::Create(o).status().code(), StatusCode::kResourceExhausted);
  // Unsealed arenas are unchanged: no write seal, writable through their fd.
  o.seal_future_writes = false;
  o.os = nullptr;
  r = Arena::Create(o);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)->write_sealed());
  EXPECT_TRUE((*r)->seal_note().empty());
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, (*r)->fd(), 0);
  EXPECT_NE(p, MAP_FAILED);
  if (p != MAP_FAILED) munmap(p, 4096);
}

}  // namespace
}  // namespace vmm
