// serve_fake_server: a paced stand-in for emoe_server (bench/serve_fake.h), to measure
// serve_bench itself: every stream gets one token chunk per --token_interval_ms, exactly, so
// that what serve_bench reports beyond that pace is the cost of the HTTP path and the client.
//
//   serve_fake_server --port=0 --token_interval_ms=20 &    # prints its URL when ready
//   serve_bench --url=http://127.0.0.1:PORT --rate=2000 --num_requests=1024 --output_tokens=200
//
// stdout: "serve_fake_server: serving fake on http://HOST:PORT" when ready. SIGTERM or SIGINT
// stops it (exit 0).
#include <gflags/gflags.h>
#include <signal.h>

#include <cstdio>

#include "bench/serve_fake.h"
#include "tools/flag_checks.h"

DEFINE_string(host, "127.0.0.1", "address to listen on");
DEFINE_int32(port, 0, "port to listen on, 0..65535 (0: any free port; the ready line says)");
DEFINE_string(model, "fake", "the served model name");
DEFINE_double(token_interval_ms, 20, "one token chunk per stream every this many ms, (0, 60000]");
DEFINE_double(scale_s, 0.5, "seconds a scale event takes, [0, 3600]");
DEFINE_int32(io_threads, 1, "HTTP I/O threads, 1..64");

int main(int argc, char** argv) {
  namespace t = emoe::tools;
  gflags::SetUsageMessage("a paced stand-in for emoe_server, to measure serve_bench itself" +
                          t::ExitCodesHelp(/*requests=*/false));
  if (auto rc = t::ParseFlags("serve_fake_server", &argc, &argv)) return *rc;
  if (vmm::Status s = t::FirstError({
          t::IntIn("port", FLAGS_port, 0, 65535),
          t::NonEmpty("model", FLAGS_model),
          t::RealIn("token_interval_ms", FLAGS_token_interval_ms, 0, true, 60000),
          t::RealIn("scale_s", FLAGS_scale_s, 0, false, 3600),
          t::IntIn("io_threads", FLAGS_io_threads, 1, 64),
      });
      !s.ok()) {
    std::fprintf(stderr, "serve_fake_server: %s\n", s.message().c_str());
    return t::kExitUsage;
  }
  // The stop signals are taken by sigwait below, never by a handler: blocked before any
  // thread starts, so that every thread inherits the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  emoe::bench::FakeServerOptions o;
  o.http.host = FLAGS_host;
  o.http.port = FLAGS_port;
  o.http.io_threads = FLAGS_io_threads;
  o.model = FLAGS_model;
  o.token_interval_s = FLAGS_token_interval_ms / 1e3;
  o.scale_s = FLAGS_scale_s;
  auto server = emoe::bench::FakeServer::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "serve_fake_server: %s\n", server.status().ToString().c_str());
    return t::kExitError;
  }
  std::printf("serve_fake_server: serving %s on http://%s:%d\n", FLAGS_model.c_str(),
              FLAGS_host.c_str(), (*server)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->Stop();
  return t::kExitOk;
}
