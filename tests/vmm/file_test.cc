// vmm/file.h: input files that are not regular files are refused by type, at once.
#include "vmm/file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

namespace vmm {
namespace {

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "vmm_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// Runs `fn` (which must not block on `fifo`); if it has not returned after a generous minute, the
// test fails and a writer opens and closes the FIFO so that the blocked reader gets EOF and the
// test ends instead of hanging.
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

TEST_F(FileTest, RegularFileOpensAndReads) {
  std::ofstream(File("a")) << "hello";
  uint64_t size = 0;
  auto fd = OpenRegularFile(File("a"), "test file", 0, &size);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(size, 5u);
  EXPECT_EQ(fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0) << "O_NONBLOCK is cleared";
  EXPECT_NE(fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);
  auto text = ReadRegularFile(File("a"), "test file", 5);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, "hello");
  // One byte over the limit is refused, naming the limit.
  auto big = ReadRegularFile(File("a"), "test file", 4);
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("limit of 4 bytes"), std::string::npos)
      << big.status().message();
}

TEST_F(FileTest, MissingFileIsNotFound) {
  auto fd = OpenRegularFile(File("absent"), "test file");
  EXPECT_EQ(fd.status().code(), StatusCode::kNotFound);
  EXPECT_NE(fd.status().message().find(File("absent")), std::string::npos);
}

TEST_F(FileTest, DirectoryIsRefusedByType) {
  const std::string d = File("config.json");
  ASSERT_EQ(mkdir(d.c_str(), 0700), 0);
  auto text = ReadRegularFile(d, "model config", 1 << 20);
  EXPECT_EQ(text.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(text.status().message(), "model config " + d + ": is a directory, not a regular file");
}

TEST_F(FileTest, FifoIsRefusedWithoutWaitingForAWriter) {
  const std::string f = File("model.safetensors");
  ASSERT_EQ(mkfifo(f.c_str(), 0600), 0);
  auto fd = Unblocked(f, [&] { return OpenRegularFile(f, "safetensors file"); });
  EXPECT_EQ(fd.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fd.status().message(), "safetensors file " + f + ": is a FIFO, not a regular file");
  auto text = Unblocked(f, [&] { return ReadRegularFile(f, "index", 1 << 20); });
  EXPECT_NE(text.status().message().find("is a FIFO"), std::string::npos);
  // With O_DIRECT too (the loader's first try).
  auto direct = Unblocked(f, [&] { return OpenRegularFile(f, "checkpoint file", O_DIRECT); });
  EXPECT_NE(direct.status().message().find("is a FIFO"), std::string::npos)
      << direct.status().message();
}

TEST_F(FileTest, SocketAndDeviceAreRefusedByType) {
  const std::string s = File("sock");
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(s.size(), sizeof(addr.sun_path));
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", s.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto sock = OpenRegularFile(s, "config");
  EXPECT_NE(sock.status().message().find("is a socket, not a regular file"), std::string::npos)
      << sock.status().message();
  close(fd);
  auto dev = ReadRegularFile("/dev/zero", "config", 1 << 20);  // would never end if read
  EXPECT_NE(dev.status().message().find("is a character device"), std::string::npos)
      << dev.status().message();
}

}  // namespace
}  // namespace vmm
