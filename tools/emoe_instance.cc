// emoe_instance: an inference instance process (DESIGN 4.1), started by the coordinator
// (engine::RemoteInstance::Launch) with its control socket as fd 3. It owns no model memory: it
// attaches to the HMM's socket when told to, and exits when told to or when the coordinator dies.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/remote_instance.h"

int main(int argc, char** argv) {
  int fd = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--control_fd=", 0) == 0) fd = std::atoi(a.c_str() + std::strlen("--control_fd="));
  }
  if (fd < 0) {
    std::fprintf(stderr,
                 "emoe_instance: started by the coordinator, not by hand (needs --control_fd=N, "
                 "a SOCK_SEQPACKET socket)\n");
    return 64;
  }
  return emoe::engine::RunInstanceHost(fd);
}
