#include "vmm/stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "vmm/host.h"

namespace vmm {

Counters& GlobalCounters() {
  static Counters* counters = new Counters();  // never destroyed: used by static destructors
  return *counters;
}

void CopyBytes(void* dst, const void* src, size_t n) {
  std::memcpy(dst, src, n);
  GlobalCounters().bytes_copied.fetch_add(n, std::memory_order_relaxed);
}

long ProcessVmaCount() {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long lines = 0;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  }
  close(fd);
  return lines;
}

Status MapError(int err, const std::string& context, const char* syscall) {
  Status s = Status::FromErrno(err, context, syscall);
  if (err != ENOMEM) return s;
  const long count = ProcessVmaCount();
  const long limit = ReadMaxMapCount();
  std::string msg = s.message();
  if (count >= 0 && limit > 0) {
    msg += "; " + std::to_string(count) + " of vm.max_map_count=" + std::to_string(limit) +
           " mappings in use";
    // A split needs up to two more VMAs; near the limit the limit is the cause.
    if (count + 3 >= limit) {
      msg +=
          ": the vm.max_map_count limit is exhausted; raise it with sysctl -w "
          "vm.max_map_count=" +
          std::to_string(limit * 4) + " or map fewer, larger slots";
    } else {
      msg += " (not the limit): out of memory or address space";
    }
  }
  return Status::ResourceExhausted(std::move(msg), ENOMEM);
}

std::string Report() {
  const Counters& c = GlobalCounters();
  auto mib = [](double b) { return b / (1 << 20); };
  char buf[1536];
  std::snprintf(buf, sizeof(buf),
                "vmm report\n"
                "  arenas           %" PRId64
                " live, %.1f MiB capacity\n"
                "  reservations     %" PRId64
                " live, %.1f MiB address space\n"
                "  mapped now       %.1f MiB in %" PRId64
                " mappings\n"
                "  mapped total     %.1f MiB in %" PRIu64
                " Map calls (%.1f MiB populated at map time)\n"
                "  unmapped total   %.1f MiB\n"
                "  moved (mremap)   %.1f MiB in %" PRIu64
                " moves\n"
                "  copied (memcpy)  %.1f MiB\n"
                "  address space    %ld VMAs of vm.max_map_count=%ld\n",
                c.arenas_now.load(), mib(c.arena_bytes_now.load()), c.reservations_now.load(),
                mib(c.reserved_bytes_now.load()), mib(c.mapped_bytes_now.load()),
                c.mappings_now.load(), mib(c.bytes_mapped.load()), c.map_calls.load(),
                mib(c.bytes_populated.load()), mib(c.bytes_unmapped.load()),
                mib(c.bytes_moved.load()), c.move_calls.load(), mib(c.bytes_copied.load()),
                ProcessVmaCount(), ReadMaxMapCount());
  return buf;
}

}  // namespace vmm
