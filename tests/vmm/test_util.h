// Helpers shared by the vmm tests: /proc parsing, page frame numbers, arena creation with skips.
#ifndef TESTS_VMM_TEST_UTIL_H_
#define TESTS_VMM_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/vmm.h"

namespace vmm::testing {

// One line of /proc/self/maps.
struct MapsLine {
  uintptr_t start = 0, end = 0;
  std::string perms;  // "rw-s"
  uint64_t offset = 0;
  std::string path;  // "" for anonymous
};
std::vector<MapsLine> ReadMaps();

// Checks the kernel's view of `r` against its software page table: every byte is covered by a
// VMA (no holes), filler is anonymous PROT_NONE, and each mapping is the right memfd at the right
// file offset with the right protection. Returns a description of the first mismatch.
::testing::AssertionResult MatchesKernel(const Reservation& r);

// Page frame number behind `addr` (after touching it), or 0 when /proc/self/pagemap hides PFNs
// (needs CAP_SYS_ADMIN).
uint64_t PageFrame(const void* addr);

// True when the page behind `addr` is present in the page tables (does not touch it).
bool PagePresent(const void* addr);

// Number of open file descriptors of this process.
int OpenFdCount();

// Creates an arena of `policy` (not kAuto) or returns nullptr with `skip` set to the reason the
// host cannot provide it. Fails the test on any other error.
std::shared_ptr<Arena> MakeArena(PageSizePolicy policy, uint64_t capacity, std::string* skip,
                                 const std::string& name = "test", Os* os = nullptr);

const char* PolicyName(PageSizePolicy p);

}  // namespace vmm::testing

// Creates `var` or skips the test with the host's reason.
#define VMM_ARENA_OR_SKIP(var, policy, capacity)                       \
  std::string var##_skip;                                              \
  auto var = ::vmm::testing::MakeArena(policy, capacity, &var##_skip); \
  if (!var) {                                                          \
    if (!var##_skip.empty()) GTEST_SKIP() << var##_skip;               \
    return;                                                            \
  }

#endif  // TESTS_VMM_TEST_UTIL_H_
