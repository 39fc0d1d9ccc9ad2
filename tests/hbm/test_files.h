// Scratch files for hbm tests: a per-test directory under $TMPDIR (or /var/tmp, which usually
// allows O_DIRECT), removed at the end.
#ifndef TESTS_HBM_TEST_FILES_H_
#define TESTS_HBM_TEST_FILES_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>

namespace emoe::hbm::testing {

class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/var/tmp") + "/hbm_test.XXXXXX";
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
    EXPECT_FALSE(path_.empty()) << "mkdtemp failed";
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Random bytes that are finite numbers whichever of F32, BF16 and F16 they are read as (bit 6
// of every odd byte is clear: the top exponent bit of each little-endian 16-bit word, and of
// each F32's high word), so that checkpoints made of them pass the loader's NaN/Inf check.
inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((rng() >> 56) & (i % 2 == 1 ? 0xbf : 0xff));
  }
  return s;
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), bytes.size());
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `fn`, which must not block on the FIFO `fifo`. If it has not returned after a generous
// minute, the test fails and a writer opens and closes the FIFO, so that a reader blocked in its
// open or read gets EOF and the test ends instead of hanging.
template <typename F>
auto Unblocked(const std::string& fifo, F fn) -> decltype(fn()) {
  auto f = std::async(std::launch::async, fn);
  if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "blocked on the FIFO " << fifo;
    const int w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (w >= 0) close(w);
  }
  return f.get();
}

// A connected SOCK_SEQPACKET socket to `path`, without any handshake (the raw peer the server's
// admission sees), or -1.
inline int RawConnect(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace emoe::hbm::testing

#endif  // TESTS_HBM_TEST_FILES_H_
