// tests/engine/coordinator_testing.h: what the coordinator tests share: a world (a tiny model
// and an HMM of six small devices), options, requests, the reference tokens, and leak probes.
#ifndef TESTS_ENGINE_COORDINATOR_TESTING_H_
#define TESTS_ENGINE_COORDINATOR_TESTING_H_

#include "engine/coordinator.h"
#include "engine/remote_instance.h"
#include "hbm/remote_control.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include "../hbm/test_files.h"
#include "vmm/host.h"
#include "vmm/stats.h"

namespace emoe::engine::testing {

using hbm::testing::ScratchDir;

inline int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

// Mappings of model memory: vmm's live mappings and reservations, and arena (memfd:vmm:) VMAs.
struct MapState {
  int64_t mappings = 0, reservations = 0, reserved_bytes = 0, arena_vmas = 0;
  bool operator==(const MapState&) const = default;
};
inline MapState Maps() {
  MapState m;
  const vmm::Counters& c = vmm::GlobalCounters();
  m.mappings = c.mappings_now.load();
  m.reservations = c.reservations_now.load();
  m.reserved_bytes = c.reserved_bytes_now.load();
  std::ifstream f("/proc/self/maps");
  std::string line;
  while (std::getline(f, line)) m.arena_vmas += line.find("memfd:vmm:") != std::string::npos;
  return m;
}

struct World {
  ScratchDir dir;
  ModelConfig config;
  hbm::Checkpoint ckpt;
  std::unique_ptr<hbm::Hmm> hmm;
};

inline std::unique_ptr<World> MakeWorld(uint64_t expert_arena = 8 << 20,
                                        uint64_t capacity = 64 << 20) {
  auto w = std::make_unique<World>();
  w->config = *PresetConfig("tiny");
  EXPECT_TRUE(GenerateModel(w->config, {}, w->dir.path()).ok());
  w->ckpt = *hbm::OpenCheckpoint(w->dir.path());
  hbm::HmmOptions o;
  o.memory.usage_bytes = {4 << 20, expert_arena, 4 << 20};  // the capacity bounds them together
  o.memory.page_size = vmm::PageSizePolicy::kSmall;
  std::vector<hbm::DeviceSpec> specs(6);
  for (int i = 0; i < 6; ++i) {
    specs[i].id = i;
    specs[i].cpus = {i % 2};
    specs[i].capacity_bytes = capacity;
  }
  w->hmm = std::move(*hbm::Hmm::CreateWithDevices(specs, o));
  return w;
}

inline CoordinatorOptions Options() {
  CoordinatorOptions o;
  o.kv_bytes_per_device = 1 << 20;
  o.block_tokens = 8;
  o.check_invariants = true;  // every scheduler checked after every step and switch
  return o;
}

inline std::vector<Request> Requests(int n) {
  std::vector<Request> rs;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.id = i;
    for (int t = 0; t < 3 + i % 5; ++t) r.prompt.push_back((i * 37 + t * 11) % 256);
    r.max_new_tokens = 40;
    rs.push_back(r);
  }
  return rs;
}

inline std::map<int64_t, std::vector<int32_t>> Drain(Coordinator& c) {
  std::map<int64_t, std::vector<int32_t>> out;
  for (int i = 0; i < 3000 && c.outstanding() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(c.outstanding(), 0u);
  for (auto& r : c.TakeFinished()) out[r.id] = r.output;
  return out;
}

// The tokens of `requests` served without any scale event, on one device.
inline std::map<int64_t, std::vector<int32_t>> Reference(const std::vector<Request>& requests) {
  auto w = MakeWorld();
  auto c = Coordinator::Create(w->hmm.get(), w->ckpt, w->config, {0}, Options());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  for (const Request& r : requests) EXPECT_TRUE((*c)->Submit(r).ok());
  return Drain(**c);
}

// A coordinator serving on `devices` of a fresh world, and the memory it holds at the start.
struct Served {
  std::unique_ptr<World> w;
  std::unique_ptr<Coordinator> c;
  uint64_t arena0 = 0;
  size_t records0 = 0;
};
inline Served Serve(std::vector<int> devices, CoordinatorOptions o = Options()) {
  Served s;
  s.w = MakeWorld();
  auto c = Coordinator::Create(s.w->hmm.get(), s.w->ckpt, s.w->config, devices, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return s;
  s.c = std::move(*c);
  s.arena0 = s.c->ArenaUsedBytes();
  s.records0 = s.w->hmm->List().size();
  return s;
}

inline int ReplicaTokens(const Coordinator& c) {
  int n = 0;
  for (const StepRecord& s : c.Timeline()) n += s.replica_tokens;
  return n;
}

}  // namespace emoe::engine::testing

#endif  // TESTS_ENGINE_COORDINATOR_TESTING_H_
