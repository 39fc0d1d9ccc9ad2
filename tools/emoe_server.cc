// emoe_server: the OpenAI-compatible HTTP server (README "HTTP API") over an elastic MoE
// deployment: completions and chat (streamed as Server-Sent Events), /v1/models, /health,
// /version, Prometheus /metrics, and the elastic admin endpoints /scale_elastic_ep and
// /is_scaling_elastic_ep (server/service.h).
//
//   emoe_server                                  the qwen3-text preset (real Qwen3 vocabulary)
//   emoe_server --model=DIR [--served_model_name=NAME] [--port=8000] [--devices=2]
//   curl -N localhost:8000/v1/chat/completions -d '{"model": "qwen3-text", "stream": true,
//        "messages": [{"role": "user", "content": "Hello"}]}'
//   curl localhost:8000/scale_elastic_ep -d '{"new_data_parallel_size": 4}'
//
// Start-up: the model (--preset generated into a scratch directory, removed at exit), its
// tokenizer, the HMM (hmmd, started or attached, or in this process) with arenas sized for the
// model on --max_devices devices, the coordinator on --devices of them (instance processes by
// default), one warm-up request, then the HTTP server; progress on stderr, then one line on
// stdout: "emoe_server: serving NAME on http://HOST:PORT (devices [0,1] of 4)".
// SIGTERM or SIGINT: new requests are answered 503, those in flight get --shutdown_grace_s to
// finish (a second signal ends the wait), the rest end with an error chunk and [DONE]; then
// the HTTP server, the coordinator (its instance processes) and hmmd stop; exit 0.
//
// This file reads the flags (the device, arena and page flags are tools/hmm_flags.h's, with
// this binary's defaults) and runs the parts; the service is server/.
//
// Exit codes (tools/flag_checks.h): 0 stopped by a signal after serving; 1 start-up failed (the
// message says what); 2 a bad flag (named; nothing started).
#include <gflags/gflags.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "engine/deployment.h"
#include "engine/forward.h"
#include "engine/kernels.h"
#include "engine/model.h"
#include "server/service.h"
#include "tools/autoscale_flags.h"
#include "tools/flag_checks.h"
#include "tools/hmm_flags.h"
#include "tools/hmm_session.h"
#include "tools/model_text.h"
#include "tools/preset_tokenizer.h"
#include "vmm/host.h"

DEFINE_string(model, "", "model directory (config.json + safetensors); empty: --preset");
DEFINE_string(preset, "qwen3-text",
              "generate this preset (gen_model --list_presets) into a scratch directory when "
              "--model is empty; qwen3-text has the real Qwen3 vocabulary and chat template");
DEFINE_string(served_model_name, "",
              "the name requests give as \"model\" (empty: the preset, or --model's basename)");
DEFINE_string(host, "127.0.0.1", "address to listen on (IPv4, IPv6 or localhost)");
DEFINE_int32(port, 8000, "port to listen on, 0..65535 (0: any free port; the ready line says)");
DEFINE_int32(devices, 2, "devices serving at the start, 1..--max_devices");
DEFINE_int32(max_devices, 4,
             "devices in the HMM (the most /scale_elastic_ep can scale to): the same as "
             "--devices_per_node");
DEFINE_int32(max_num_seqs, 64, "sequences in one batch step (vLLM's max_num_seqs), 1..4096");
DEFINE_int32(max_queue, 1024,
             "requests waiting beyond max_num_seqs before new ones get 429, 0..1048576");
DEFINE_int32(max_tokens_per_step, 2048,
             "token budget of one step (vLLM's max_num_batched_tokens), 2..1048576; without "
             "--enable_chunked_prefill a prompt is prefilled in one step: at most this minus one "
             "tokens");
DEFINE_bool(enable_chunked_prefill, true,
            "prefill a prompt larger than what a step's budget has left over several steps, "
            "beside the decodes (vLLM's --enable-chunked-prefill); prompts up to the context");
DEFINE_int32(block_tokens, 16, "tokens per KV block, 1..4096");
DEFINE_int32(threads_per_device, 1,
             "threads per device, 1..64: a device is a team of threads pinned to its CPUs that "
             "split the rows of every product (outputs are identical for every count); more "
             "than 1 needs --compute_share=1");
DEFINE_double(compute_share, 1.0,
              "device compute share in (0, 1] (DESIGN 4.4): each device idles (1/share - 1) "
              "times its compute after each step, like a slower accelerator");
DEFINE_bool(instance_processes, true,
            "run each instance in a process of its own (emoe_instance) attached to the HMM "
            "through its socket (DESIGN 4.1); false: in this process (then the HMM is too)");
DEFINE_string(instance_binary, "", "the instance binary; empty: emoe_instance next to this one");
DEFINE_bool(hmmd, true,
            "run the HMM in hmmd, a daemon this server starts (false: in this process)");
DEFINE_string(hmmd_binary, "", "the hmmd binary; empty: hmmd next to this one");
DEFINE_string(hmmd_socket, "",
              "drive an hmmd that is already running (its socket) instead of starting one; its "
              "devices and arenas are used as they are, this server's records live under "
              "emoe_server-<pid>/");
DEFINE_double(shutdown_grace_s, 30,
              "on SIGTERM/SIGINT, seconds the requests in flight get to finish, 0..86400");
DEFINE_int32(http_threads, 2, "HTTP I/O threads, 1..64");
DEFINE_int32(max_connections, 8192, "open connections at most (more get 503), 1..1048576");
DEFINE_uint64(max_body_kb, 4096, "largest request body, KiB (larger: 413), 1..1048576");
DEFINE_uint64(max_header_kb, 16, "largest request head, KiB (larger: 431), 1..1024");
DEFINE_double(header_timeout_s, 10, "seconds a request head may take (slower: 408), (0, 3600]");
DEFINE_double(body_timeout_s, 30, "seconds a request body may take (slower: 408), (0, 3600]");
DEFINE_double(idle_timeout_s, 60, "seconds an idle keep-alive connection stays open, (0, 86400]");

namespace {

using emoe::tools::FirstError;
using vmm::Status;
using vmm::StatusOr;

// The stop signals, SIGTERM and SIGINT, are blocked in every thread (main blocks them before
// any other starts) and taken with sigwait. Child processes inherit the mask: a terminal's
// Ctrl-C signals the whole foreground process group, and the instance processes must not die
// under the requests still finishing (the coordinator ends them, SIGKILL at worst). hmmd takes
// its stop signals itself (signalfd), so Ctrl-C stops it too: the instances keep their
// mappings and the requests in flight still finish, but the coordinator's last release is
// refused (logged). SIGTERM to this process alone stops everything in order.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Waits up to `timeout_ms` (-1: for ever) for a stop signal; true when one came.
bool AwaitStopSignal(int timeout_ms) {
  const sigset_t set = StopSignals();
  if (timeout_ms < 0) {
    int sig = 0;
    return sigwait(&set, &sig) == 0;
  }
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

// The server's defaults of the HMM flags: arenas sized from the model (0), 128 MiB of KV per
// device, nothing populated up front (a 2-core VM without huge pages serves it as it is).
emoe::tools::HmmFlagDefaults ServerHmmDefaults() {
  emoe::tools::HmmFlagDefaults d;
  d.devices_per_node = 4;
  d.weights_mb = 0;
  d.experts_mb = 0;
  d.kv_mb = 128;
  return d;
}

std::string BesideMe(const std::string& name) {
  std::error_code ec;
  return (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / name).string();
}

// This binary's own flags, each checked under its own name (the HMM flags: HmmOptionsFromFlags).
Status CheckFlags() {
  namespace t = emoe::tools;
  return FirstError({
      FLAGS_model.empty() ? t::Named("preset", emoe::engine::PresetConfig(FLAGS_preset).status())
                          : t::Directory("model", FLAGS_model),
      FLAGS_model.empty()
          ? t::Named("preset",
                     t::CheckPresetTokenizerDir(FLAGS_preset, t::DefaultTokenizerDir(FLAGS_preset)))
          : Status::Ok(),
      t::NonEmpty("host", FLAGS_host),
      t::IntIn("port", FLAGS_port, 0, 65535),
      t::IntIn("max_devices", FLAGS_max_devices, 1, 256),
      t::IntIn("devices", FLAGS_devices, 1, 256),
      t::IntIn("max_num_seqs", FLAGS_max_num_seqs, 1, 4096),
      t::IntIn("max_queue", FLAGS_max_queue, 0, 1 << 20),
      t::IntIn("max_tokens_per_step", FLAGS_max_tokens_per_step, 2, 1 << 20),
      t::IntIn("block_tokens", FLAGS_block_tokens, 1, 4096),
      t::RealIn("compute_share", FLAGS_compute_share, 0, true, 1),
      t::IntIn("threads_per_device", FLAGS_threads_per_device, 1, 64),
      FLAGS_threads_per_device > 1 && FLAGS_compute_share < 1
          ? Status::InvalidArgument("--threads_per_device > 1 needs --compute_share=1 (the "
                                    "compute share is accounted per thread)")
          : Status::Ok(),
      t::Executable("instance_binary", FLAGS_instance_binary),
      t::Executable("hmmd_binary", FLAGS_hmmd_binary),
      t::Socket("hmmd_socket", FLAGS_hmmd_socket),
      t::RealIn("shutdown_grace_s", FLAGS_shutdown_grace_s, 0, false, 86400),
      t::IntIn("http_threads", FLAGS_http_threads, 1, 64),
      t::IntIn("max_connections", FLAGS_max_connections, 1, 1 << 20),
      t::IntIn("max_body_kb",
               static_cast<int64_t>(std::min<uint64_t>(FLAGS_max_body_kb, 1ull << 40)), 1, 1 << 20),
      t::IntIn("max_header_kb",
               static_cast<int64_t>(std::min<uint64_t>(FLAGS_max_header_kb, 1ull << 40)), 1, 1024),
      t::RealIn("header_timeout_s", FLAGS_header_timeout_s, 0, true, 3600),
      t::RealIn("body_timeout_s", FLAGS_body_timeout_s, 0, true, 3600),
      t::RealIn("idle_timeout_s", FLAGS_idle_timeout_s, 0, true, 86400),
  });
}

// The HMM flags (--max_devices is --devices_per_node), checked before anything starts; the
// arenas are sized later, from the model. --devices must fit in the HMM's devices.
Status CheckHmmFlags() {
  VMM_RETURN_IF_ERROR(emoe::tools::ForwardFlagAlias("max_devices", "devices_per_node"));
  VMM_ASSIGN_OR_RETURN(const emoe::hbm::HmmOptions h, emoe::tools::HmmOptionsFromFlags());
  const int nodes = h.devices.nodes.empty() ? 1 : static_cast<int>(h.devices.nodes.size());
  const int max_devices = h.devices.devices_per_node * nodes;
  if (FLAGS_devices > max_devices) {
    return Status::InvalidArgument("--devices must be an integer in 1.." +
                                   std::to_string(max_devices) + " (--max_devices), got " +
                                   std::to_string(FLAGS_devices));
  }
  return Status::Ok();
}

// A model generated into a directory nobody asked to keep: removed when this goes.
struct Scratch {
  std::string path;
  ~Scratch() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// The model directory: --model, or --preset generated (with its tokenizer) into `scratch`.
StatusOr<std::string> ModelDir(Scratch* scratch) {
  if (!FLAGS_model.empty()) return FLAGS_model;
  const char* tmp = getenv("TMPDIR");
  scratch->path = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/emoe_server-" +
                  std::to_string(getpid()) + "-" + FLAGS_preset;
  std::fprintf(stderr, "emoe_server: generating preset %s into %s\n", FLAGS_preset.c_str(),
               scratch->path.c_str());
  VMM_ASSIGN_OR_RETURN(auto cfg, emoe::engine::PresetConfig(FLAGS_preset));
  VMM_RETURN_IF_ERROR(emoe::engine::GenerateModel(cfg, {}, scratch->path));
  VMM_RETURN_IF_ERROR(emoe::tools::WritePresetTokenizer(
      FLAGS_preset, emoe::tools::DefaultTokenizerDir(FLAGS_preset), scratch->path));
  return scratch->path;
}

// The HMM's devices and arenas: --max_devices devices on the first NUMA node (unless --nodes),
// arenas of 0 sized so that any device count can serve the model: the weights twice (a
// baseline's private copy beside the serving one) and every expert (one device may hold them
// all, twice during a colocated event); a capacity of 0 is the sum of the arenas.
// REQUIRES: CheckHmmFlags() was OK.
StatusOr<emoe::hbm::HmmOptions> SizedHmmOptions(const emoe::engine::ModelConfig& config,
                                                const emoe::hbm::Checkpoint& ckpt) {
  VMM_ASSIGN_OR_RETURN(emoe::hbm::HmmOptions h, emoe::tools::HmmOptionsFromFlags());
  if (h.devices.nodes.empty()) h.devices.nodes = {vmm::NumaNodes()[0].id};
  const emoe::engine::ArenaBytes one = emoe::engine::ModelArenaBytes(config, ckpt, 1);
  auto& usage = h.memory.usage_bytes;
  uint64_t& weights = usage[static_cast<int>(emoe::hbm::Usage::kWeights)];
  uint64_t& experts = usage[static_cast<int>(emoe::hbm::Usage::kExperts)];
  uint64_t& kv = usage[static_cast<int>(emoe::hbm::Usage::kKv)];
  auto mib = [](uint64_t b) {
    return (b + (1ull << 20) - 1) & ~((1ull << 20) - 1);
  };  // hmmd's unit
  if (weights == 0) weights = mib(2 * one.weights_bytes);
  if (experts == 0) experts = mib(2 * one.experts_bytes);
  if (kv == 0) kv = 128ull << 20;
  if (h.devices.capacity_bytes == 0) h.devices.capacity_bytes = weights + experts + kv;
  std::fprintf(stderr,
               "emoe_server: %d devices, each: weights %llu MiB, experts %llu MiB, KV %llu MiB "
               "of arenas, %llu MiB of memory%s\n",
               h.devices.devices_per_node * static_cast<int>(h.devices.nodes.size()),
               static_cast<unsigned long long>(weights >> 20),
               static_cast<unsigned long long>(experts >> 20),
               static_cast<unsigned long long>(kv >> 20),
               static_cast<unsigned long long>(h.devices.capacity_bytes >> 20),
               h.memory.populate ? " (populated at start)" : " (filled as used)");
  return h;
}

// What start-up reads before anything runs: the model, its text, the HMM's devices.
struct Setup {
  Scratch scratch;  // first: removed last
  std::string model;
  emoe::engine::ModelConfig config;
  emoe::hbm::Checkpoint ckpt;
  std::unique_ptr<emoe::tools::ModelText> text;
  emoe::hbm::HmmOptions hmm;
};

Status Prepare(Setup* s) {
  VMM_ASSIGN_OR_RETURN(s->model, ModelDir(&s->scratch));
  VMM_ASSIGN_OR_RETURN(s->config, emoe::engine::LoadModelConfig(s->model));
  VMM_ASSIGN_OR_RETURN(s->ckpt, emoe::hbm::OpenCheckpoint(s->model));
  VMM_RETURN_IF_ERROR(emoe::engine::ValidateCheckpoint(s->config, s->ckpt));
  VMM_ASSIGN_OR_RETURN(s->text, emoe::tools::ModelText::ForModel(s->model, s->config.vocab_size));
  std::fprintf(stderr, "emoe_server: %s\n", s->text->start_line().c_str());
  std::fprintf(stderr, "emoe_server: kernels %s, %d thread(s) per device\n",
               emoe::engine::kernels::IsaName(emoe::engine::kernels::ActiveIsa()),
               FLAGS_threads_per_device);
  VMM_ASSIGN_OR_RETURN(s->hmm, SizedHmmOptions(s->config, s->ckpt));
  return Status::Ok();
}

emoe::engine::CoordinatorOptions CoordinatorOptionsFor(const Setup& s) {
  emoe::engine::CoordinatorOptions co;
  co.instance.compute_share = FLAGS_compute_share;
  co.instance.threads_per_device = FLAGS_threads_per_device;
  co.scheduler.max_batch = FLAGS_max_num_seqs;
  co.scheduler.max_tokens_per_step = FLAGS_max_tokens_per_step;
  co.scheduler.chunked_prefill = FLAGS_enable_chunked_prefill;
  co.block_tokens = FLAGS_block_tokens;
  co.kv_bytes_per_device = s.hmm.memory.usage_bytes[static_cast<int>(emoe::hbm::Usage::kKv)];
  co.keep_history = false;  // a long-running service: bounded memory
  if (FLAGS_instance_processes) {
    co.instance_binary =
        FLAGS_instance_binary.empty() ? BesideMe("emoe_instance") : FLAGS_instance_binary;
  }
  if (!FLAGS_hmmd_socket.empty()) {
    co.record_namespace = "emoe_server-" + std::to_string(getpid()) + "/";
  }
  return co;
}

emoe::server::ServiceOptions ServiceOptionsFor(const Setup& s,
                                               const emoe::engine::CoordinatorOptions& co) {
  emoe::server::ServiceOptions so;
  so.served_model_name = FLAGS_served_model_name;
  if (so.served_model_name.empty()) {
    so.served_model_name =
        FLAGS_model.empty() ? FLAGS_preset
                            : std::filesystem::path(s.model).lexically_normal().filename().string();
  }
  if (so.served_model_name.empty()) so.served_model_name = s.model;  // "--model=/"
  so.model_root = FLAGS_model.empty() ? FLAGS_preset : s.model;
  // vLLM's max_model_len: the model's context, or less when one device's KV store holds less.
  const uint64_t block_bytes = emoe::engine::KvGeometryFor(s.config, co.block_tokens).block_bytes();
  const int64_t kv_tokens =
      static_cast<int64_t>(co.kv_bytes_per_device / block_bytes) * co.block_tokens;
  so.max_model_len = std::min<int64_t>(s.config.max_position_embeddings, kv_tokens);
  so.max_prompt_tokens =
      FLAGS_enable_chunked_prefill ? so.max_model_len - 1 : FLAGS_max_tokens_per_step - 1;
  so.max_num_seqs = FLAGS_max_num_seqs;
  so.max_queue = FLAGS_max_queue;
  so.max_devices = s.hmm.devices.devices_per_node * static_cast<int>(s.hmm.devices.nodes.size());
  so.http.host = FLAGS_host;
  so.http.port = FLAGS_port;
  so.http.io_threads = FLAGS_http_threads;
  so.http.max_connections = FLAGS_max_connections;
  so.http.max_body_bytes = FLAGS_max_body_kb << 10;
  so.http.max_header_bytes = FLAGS_max_header_kb << 10;
  so.http.header_timeout_s = FLAGS_header_timeout_s;
  so.http.body_timeout_s = FLAGS_body_timeout_s;
  so.http.idle_timeout_s = FLAGS_idle_timeout_s;
  return so;
}

// One short request through the whole path (prefill, a decode step) before the port opens.
Status WarmUp(emoe::engine::Coordinator* c, const emoe::tools::ModelText& text) {
  emoe::engine::Request r;
  r.id = 0;  // the service's ids start at 1
  r.prompt = text.Encode("Hello");
  if (r.prompt.empty()) r.prompt = {0};
  r.max_new_tokens = 2;
  VMM_RETURN_IF_ERROR(c->Submit(r));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (c->outstanding() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (c->outstanding() > 0)
    return Status::Unavailable("the warm-up request did not finish in 120 s");
  const emoe::engine::ServingSnapshot snap = c->Snapshot();
  if (!snap.down.empty()) return Status::Unavailable("not serving after the warm-up: " + snap.down);
  return Status::Ok();
}

// Waits for a stop signal, then stops the service; a second signal (0.5 s or more after the
// first: a dying terminal's repeats are one) ends the grace period.
void ServeUntilSignal(emoe::server::OpenAiService* service) {
  AwaitStopSignal(-1);
  std::fprintf(stderr, "emoe_server: stopping (up to %.0f s for the requests in flight)\n",
               FLAGS_shutdown_grace_s);
  std::atomic<bool> stopped{false};
  std::thread second([&] {
    const auto first = std::chrono::steady_clock::now();
    while (!stopped) {
      if (AwaitStopSignal(100) &&
          std::chrono::steady_clock::now() - first > std::chrono::milliseconds(500)) {
        std::fprintf(stderr, "emoe_server: second stop signal: ending the requests in flight\n");
        service->EndGraceNow();
        return;
      }
    }
  });
  service->Stop(FLAGS_shutdown_grace_s);
  stopped = true;
  second.join();
}

// A stop signal that came during start-up (it runs with them blocked): start-up ends there,
// everything started so far stopped in order, exit 0.
bool StopPending() {
  if (!AwaitStopSignal(0)) return false;
  std::fprintf(stderr, "emoe_server: stopped before serving (a stop signal during start-up)\n");
  return true;
}

emoe::tools::HmmSessionOptions SessionOptions(const Setup& setup) {
  emoe::tools::HmmSessionOptions ho;
  ho.hmm = setup.hmm;
  ho.hmmd_binary = FLAGS_hmmd_binary.empty() ? BesideMe("hmmd") : FLAGS_hmmd_binary;
  ho.hmmd_socket = FLAGS_hmmd_socket;
  ho.prog = "emoe_server";
  ho.report = stderr;  // stdout has the ready line only
  return ho;
}

// Serves until a stop signal; the exit code.
int Serve() {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "emoe_server: %s\n", s.ToString().c_str());
    return emoe::tools::kExitError;
  };
  Setup setup;
  if (Status s = Prepare(&setup); !s.ok()) return fail(s);
  if (StopPending()) return emoe::tools::kExitOk;
  emoe::engine::CoordinatorOptions co = CoordinatorOptionsFor(setup);
  emoe::server::ServiceOptions so = ServiceOptionsFor(setup, co);
  if (Status s = so.Validate(); !s.ok()) return fail(s);
  emoe::tools::HmmSession hmm(SessionOptions(setup));
  // In hmmd (started, or attached), or in this process when the instances are too.
  if (Status s = hmm.Use(co.instance_binary.empty() || !FLAGS_hmmd); !s.ok()) return fail(s);
  if (StopPending()) return emoe::tools::kExitOk;
  so.max_devices = hmm.get()->num_devices();  // a running hmmd's (--hmmd_socket) are its own
  if (FLAGS_devices > so.max_devices) {
    return fail(Status::InvalidArgument("--devices=" + std::to_string(FLAGS_devices) +
                                        ": the HMM has " + std::to_string(so.max_devices) +
                                        " devices"));
  }
  auto autoscale = emoe::tools::AutoscalerConfigFromFlags(so.max_devices, FLAGS_devices);
  if (!autoscale.ok()) return fail(autoscale.status());
  so.autoscale = *autoscale;
  // Declared after the HMM and before the coordinator: it observes the coordinator, which
  // goes first, and the HMM last.
  emoe::server::OpenAiService service(so, setup.text.get());
  co.observer = &service;
  std::vector<int> devices;
  for (int d = 0; d < FLAGS_devices; ++d) devices.push_back(d);
  std::fprintf(stderr, "emoe_server: loading %s onto devices %s\n", setup.model.c_str(),
               emoe::engine::DevicesText(devices).c_str());
  const auto t0 = std::chrono::steady_clock::now();
  auto coordinator =
      emoe::engine::Coordinator::Create(hmm.get(), setup.ckpt, setup.config, devices, co);
  if (!coordinator.ok()) return fail(coordinator.status());
  if (Status s = WarmUp(coordinator->get(), *setup.text); !s.ok()) return fail(s);
  if (StopPending()) return emoe::tools::kExitOk;  // the coordinator, then the HMM, end
  std::fprintf(stderr, "emoe_server: loaded and warmed up in %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (Status s = service.Start(coordinator->get()); !s.ok()) return fail(s);
  std::printf("emoe_server: serving %s on http://%s:%d (devices %s of %d)\n",
              so.served_model_name.c_str(), FLAGS_host.c_str(), service.port(),
              emoe::engine::DevicesText(devices).c_str(), so.max_devices);
  std::fflush(stdout);
  ServeUntilSignal(&service);
  coordinator->reset();  // its instance processes end; then hmmd, with the session
  hmm.Reset();
  std::fprintf(stderr, "emoe_server: stopped\n");
  return emoe::tools::kExitOk;
}

}  // namespace

// Every connection is a descriptor: the soft limit goes up to the hard one (often 1024 ->
// 20000 or more), and the start-up says when the limit is below --max_connections.
static void RaiseOpenFileLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < static_cast<rlim_t>(FLAGS_max_connections) + 64) {
    std::fprintf(stderr,
                 "emoe_server: warning: %llu open files at most (RLIMIT_NOFILE): fewer "
                 "connections than --max_connections=%d can be open\n",
                 static_cast<unsigned long long>(rl.rlim_cur), FLAGS_max_connections);
  }
}

int main(int argc, char** argv) {
  gflags::SetUsageMessage("OpenAI-compatible HTTP server with elastic scaling" +
                          emoe::tools::ExitCodesHelp(/*requests=*/false));
  emoe::tools::SetHmmFlagDefaults(ServerHmmDefaults());
  if (auto rc = emoe::tools::ParseFlags("emoe_server", &argc, &argv)) return *rc;
  if (Status s = CheckFlags(); !s.ok()) {
    std::fprintf(stderr, "emoe_server: %s\n", s.message().c_str());
    return emoe::tools::kExitUsage;
  }
  if (Status s = CheckHmmFlags(); !s.ok()) {
    std::fprintf(stderr, "emoe_server: %s\n", s.message().c_str());
    return emoe::tools::kExitUsage;
  }
  if (Status s = emoe::tools::CheckAutoscaleFlags(FLAGS_max_devices, FLAGS_devices); !s.ok()) {
    std::fprintf(stderr, "emoe_server: %s\n", s.message().c_str());
    return emoe::tools::kExitUsage;
  }
  RaiseOpenFileLimit();
  const sigset_t stop = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts (see StopSignals)
  return Serve();
}
