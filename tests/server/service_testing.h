// tests/server/service_testing.h: the world of the service's tests: a generated model with a
// real tokenizer (mixtral-text: Mistral's vocabulary, small dimensions) or the byte tokenizer
// (tiny), an HMM of four small devices in this process, greedy reference outputs computed by a
// coordinator of their own before the service's starts, and the service over a coordinator on
// devices 0 and 1 with its HTTP server on a free port.
#ifndef TESTS_SERVER_SERVICE_TESTING_H_
#define TESTS_SERVER_SERVICE_TESTING_H_

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../hbm/test_files.h"
#include "engine/coordinator.h"
#include "engine/deployment.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "server/service.h"
#include "service_client.h"
#include "tools/model_text.h"
#include "tools/preset_tokenizer.h"

namespace emoe::server::testing {

using nlohmann::json;

inline json Parse(const std::string& s) {
  return json::parse(s, nullptr, /*allow_exceptions=*/false);
}

struct World {
  hbm::testing::ScratchDir dir;
  engine::ModelConfig config;
  hbm::Checkpoint ckpt;
  std::unique_ptr<tools::ModelText> text;
  std::unique_ptr<hbm::Hmm> hmm;
  uint64_t kv_bytes = 4 << 20;
};

// Whether the preset's vocabulary is in data/tokenizers (else the test skips, naming it).
inline std::string MissingTokenizer(const std::string& preset) {
  const std::string dir = tools::DefaultTokenizerDir(preset);
  if (dir.empty() || std::filesystem::exists(dir + "/tokenizer.json")) return "";
  return "no " + dir + "/tokenizer.json: run scripts/fetch_tokenizers.sh";
}

inline std::unique_ptr<World> MakeWorld(const std::string& preset, int devices = 4) {
  auto w = std::make_unique<World>();
  w->config = *engine::PresetConfig(preset);
  EXPECT_TRUE(engine::GenerateModel(w->config, {}, w->dir.path()).ok());
  EXPECT_TRUE(
      tools::WritePresetTokenizer(preset, tools::DefaultTokenizerDir(preset), w->dir.path()).ok());
  w->ckpt = *hbm::OpenCheckpoint(w->dir.path());
  auto text = tools::ModelText::ForModel(w->dir.path(), w->config.vocab_size);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  w->text = std::move(*text);
  const engine::ArenaBytes one = engine::ModelArenaBytes(w->config, w->ckpt, 1);
  hbm::HmmOptions o;
  o.memory.usage_bytes = {2 * one.weights_bytes, 2 * one.experts_bytes, w->kv_bytes};
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(devices);
  for (int i = 0; i < devices; ++i) {
    specs[i].id = i;
    specs[i].cpus = {i % 2};
    specs[i].capacity_bytes = 2 * (one.weights_bytes + one.experts_bytes) + w->kv_bytes;
  }
  auto hmm = hbm::Hmm::CreateWithDevices(specs, o);
  EXPECT_TRUE(hmm.ok()) << hmm.status().ToString();
  w->hmm = std::move(*hmm);
  return w;
}

inline engine::CoordinatorOptions CoordinatorOptionsFor(const World& w) {
  engine::CoordinatorOptions co;
  co.kv_bytes_per_device = w.kv_bytes;
  co.block_tokens = 8;
  co.scheduler.max_batch = 16;
  co.scheduler.max_tokens_per_step = 512;
  co.check_invariants = true;
  return co;
}

// The engine's greedy outputs for `prompts` (max_new tokens each, stopping at the EOS), served
// alone by a coordinator of their own on device 0.
inline std::vector<std::vector<int32_t>> Greedy(World& w,
                                                const std::vector<std::vector<int32_t>>& prompts,
                                                int max_new) {
  auto c =
      engine::Coordinator::Create(w.hmm.get(), w.ckpt, w.config, {0}, CoordinatorOptionsFor(w));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  for (size_t i = 0; i < prompts.size(); ++i) {
    engine::Request r;
    r.id = static_cast<int64_t>(i);
    r.prompt = prompts[i];
    r.max_new_tokens = max_new;
    r.stop_token_ids = w.text->StopTokenIds();
    EXPECT_TRUE((*c)->Submit(r).ok());
  }
  for (int i = 0; i < 6000 && (*c)->outstanding() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<std::vector<int32_t>> out(prompts.size());
  for (auto& r : (*c)->TakeFinished()) out.at(r.id) = r.output;
  return out;
}

// The service over a coordinator on devices {0, 1} of `w`, listening on a free port.
struct Served {
  std::unique_ptr<OpenAiService> service;
  std::unique_ptr<engine::Coordinator> coordinator;
  int port = 0;
  ~Served() { Stop(1); }
  void Stop(double grace_s) {
    if (service != nullptr) service->Stop(grace_s);
    coordinator.reset();
  }
};

inline ServiceOptions ServiceOptionsFor(const World& w) {
  ServiceOptions so;
  so.served_model_name = "test-model";
  so.model_root = w.dir.path();
  so.max_model_len = 1024;
  so.max_prompt_tokens = 511;
  so.max_num_seqs = 16;
  so.max_queue = 64;
  so.max_devices = w.hmm->num_devices();
  so.stats_interval_s = 0.05;
  so.http.port = 0;
  return so;
}

inline std::unique_ptr<Served> Serve(World& w, ServiceOptions so, engine::CoordinatorOptions co) {
  auto s = std::make_unique<Served>();
  s->service = std::make_unique<OpenAiService>(so, w.text.get());
  co.observer = s->service.get();
  co.keep_history = false;
  auto c = engine::Coordinator::Create(w.hmm.get(), w.ckpt, w.config, {0, 1}, co);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return s;
  s->coordinator = std::move(*c);
  const Status st = s->service->Start(s->coordinator.get());
  EXPECT_TRUE(st.ok()) << st.ToString();
  s->port = s->service->port();
  return s;
}

// The body of a completion request.
inline std::string CompletionBody(const std::string& prompt, int max_tokens, bool stream,
                                  json extra = json::object()) {
  json j = {{"model", "test-model"},
            {"prompt", prompt},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"stream", stream}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j.dump();
}

inline std::string ChatBody(const std::string& user, int max_tokens, bool stream,
                            json extra = json::object()) {
  json j = {{"model", "test-model"},
            {"messages", json::array({{{"role", "user"}, {"content", user}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"stream", stream}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j.dump();
}

// A whole streamed response: the text of its deltas, its chunks' JSON, and whether it ended
// with [DONE].
struct StreamResult {
  HttpReply head;
  std::string text;
  std::vector<json> chunks;
  bool done = false;
  std::string finish_reason;
};

inline StreamResult ReadStream(Connection& c) {
  StreamResult s;
  if (!c.ReadHead(&s.head)) return s;
  while (auto ev = c.ReadEvent()) {
    if (*ev == "[DONE]") {
      s.done = true;
      continue;
    }
    json j = Parse(*ev);
    s.chunks.push_back(j);
    if (!j.contains("choices")) continue;
    for (const json& ch : j["choices"]) {
      if (ch.contains("text")) s.text += ch["text"].get<std::string>();
      if (ch.contains("delta") && ch["delta"].contains("content") &&
          ch["delta"]["content"].is_string()) {
        s.text += ch["delta"]["content"].get<std::string>();
      }
      if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) {
        s.finish_reason = ch["finish_reason"].get<std::string>();
      }
    }
  }
  return s;
}

inline StreamResult Stream(int port, const std::string& path, const std::string& body) {
  Connection c(port);
  c.Send("POST", path, body, {"Connection: close"});
  return ReadStream(c);
}

// The value of a sample line "name{labels} value" in a /metrics text (-1 when absent).
inline double Sample(const std::string& metrics, const std::string& series) {
  size_t pos = 0;
  while ((pos = metrics.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || metrics[pos - 1] == '\n')
      return std::atof(metrics.c_str() + pos + series.size());
    pos += series.size();
  }
  return -1;
}

// Polls `fn` every 5 ms for up to `s` seconds; true once it holds.
template <typename Fn>
bool Eventually(Fn fn, double s = 30) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
  while (std::chrono::steady_clock::now() < end) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return fn();
}

}  // namespace emoe::server::testing

#endif  // TESTS_SERVER_SERVICE_TESTING_H_
