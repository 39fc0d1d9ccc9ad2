// bench/bench_util.h: small helpers shared by the benchmarks.
#ifndef BENCH_BENCH_UTIL_H_
#define BENCH_BENCH_UTIL_H_

#include <fcntl.h>
#include <unistd.h>

namespace emoe::bench {

// Drops the page cache (root only) so that the next read comes from the disk. False if refused.
inline bool DropCaches() {
  sync();
  const int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "3\n", 2) == 2;
  close(fd);
  return ok;
}

}  // namespace emoe::bench

#endif  // BENCH_BENCH_UTIL_H_
