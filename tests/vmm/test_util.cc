#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace vmm::testing {

std::vector<MapsLine> ReadMaps() {
  std::vector<MapsLine> out;
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    MapsLine m;
    unsigned long long s, e, off;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s%n", &s, &e, perms, &off, &path_at) <
        4) {
      continue;
    }
    m.start = s;
    m.end = e;
    m.perms = perms;
    m.offset = off;
    std::string rest = line.substr(path_at);
    const size_t p = rest.find_first_not_of(' ');
    m.path = p == std::string::npos ? "" : rest.substr(p);
    out.push_back(m);
  }
  return out;
}

::testing::AssertionResult MatchesKernel(const Reservation& r) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(r.base()), end = base + r.size();
  const std::vector<Mapping> table = r.Mappings();
  // Expected attributes of the segment containing `a`: mapping index or -1 for filler, and the
  // segment's end.
  auto segment = [&](uintptr_t a, int* index, uintptr_t* seg_end) {
    *index = -1;
    *seg_end = end;
    for (size_t i = 0; i < table.size(); ++i) {
      const uintptr_t ms = base + table[i].offset, me = ms + table[i].length;
      if (a >= ms && a < me) {
        *index = static_cast<int>(i);
        *seg_end = me;
        return;
      }
      if (ms > a && ms < *seg_end) *seg_end = ms;
    }
  };
  uint64_t covered = 0;
  for (const MapsLine& l : ReadMaps()) {
    const uintptr_t s = std::max(l.start, base), e = std::min(l.end, end);
    if (s >= e) continue;
    covered += e - s;
    for (uintptr_t a = s; a < e;) {
      int i;
      uintptr_t seg_end;
      segment(a, &i, &seg_end);
      std::ostringstream where;
      where << "at reservation+0x" << std::hex << (a - base) << " (maps line " << l.start << "-"
            << l.end << " " << l.perms << " " << l.offset << " '" << l.path << "')";
      if (i < 0) {
        if (l.perms != "---p" || !l.path.empty()) {
          return ::testing::AssertionFailure() << "expected PROT_NONE filler " << where.str();
        }
      } else {
        const Mapping& m = table[i];
        const std::string want_perms = m.prot == Protection::kRead ? "r--s" : "rw-s";
        const uint64_t want_off = m.extent.offset_bytes() + m.extent_offset + (a - base - m.offset);
        const uint64_t got_off = l.offset + (a - l.start);
        const std::string want_path = "vmm:" + m.extent.arena()->name();
        if (l.perms != want_perms || got_off != want_off ||
            l.path.find(want_path) == std::string::npos) {
          return ::testing::AssertionFailure()
                 << "expected " << want_perms << " '" << want_path << "' file offset 0x" << std::hex
                 << want_off << " " << where.str();
        }
      }
      a = std::min(seg_end, e);
    }
  }
  if (covered != r.size()) {
    return ::testing::AssertionFailure() << "the kernel maps " << covered << " of " << r.size()
                                         << " reserved bytes: the reservation has a hole";
  }
  return ::testing::AssertionSuccess();
}

uint64_t PageFrame(const void* addr) {
  volatile const char* p = static_cast<const char*>(addr);
  (void)*p;
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t entry = 0;
  const off_t off = static_cast<off_t>(reinterpret_cast<uintptr_t>(addr) / 4096 * 8);
  const ssize_t n = pread(fd, &entry, sizeof(entry), off);
  close(fd);
  if (n != sizeof(entry) || !(entry >> 63)) return 0;
  return entry & ((uint64_t{1} << 55) - 1);
}

bool PagePresent(const void* addr) {
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint64_t entry = 0;
  const off_t off = static_cast<off_t>(reinterpret_cast<uintptr_t>(addr) / 4096 * 8);
  const ssize_t n = pread(fd, &entry, sizeof(entry), off);
  close(fd);
  return n == sizeof(entry) && (entry >> 63) != 0;
}

int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

const char* PolicyName(PageSizePolicy p) {
  switch (p) {
    case PageSizePolicy::kAuto:
      return "auto";
    case PageSizePolicy::kHugetlb:
      return "hugetlb";
    case PageSizePolicy::kShmemThp:
      return "thp";
    case PageSizePolicy::kSmall:
      return "4k";
  }
  return "?";
}

std::shared_ptr<Arena> MakeArena(PageSizePolicy policy, uint64_t capacity, std::string* skip,
                                 const std::string& name, Os* os) {
  ArenaOptions o;
  o.name = name;
  o.capacity_bytes = capacity;
  o.page_size = policy;
  o.os = os;
  auto a = Arena::Create(o);
  if (a.ok()) return *a;
  if (a.status().code() == StatusCode::kUnavailable) {
    *skip = std::string("host cannot provide ") + PolicyName(policy) +
            " pages: " + a.status().message();
  } else {
    ADD_FAILURE() << a.status().ToString();
  }
  return nullptr;
}

}  // namespace vmm::testing
