// engine/src/instances/instance_pool.h: where instances come from. A launcher boots instances of
// one kind (in this process, or instance processes that attach through the HMM's socket); the
// pool keeps a few booted, unattached standbys for likely next device sets (DESIGN 4.1
// pre-initialization), least recently prepared first out.
//
// Thread safety: driven by the control thread (scale events, restarts, PrepareStandby).
#ifndef ENGINE_SRC_INSTANCES_INSTANCE_POOL_H_
#define ENGINE_SRC_INSTANCES_INSTANCE_POOL_H_

#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/instance.h"
#include "hbm/hmm.h"

namespace emoe::engine {

// Boots pre-initialized instances of one kind for a device set.
class InstanceLauncher {
 public:
  virtual ~InstanceLauncher() = default;
  // A booted, unattached instance with one rank per device (pinned to each device's CPUs).
  virtual StatusOr<std::unique_ptr<Instance>> Boot(const std::vector<int>& devices) = 0;
};

// In-process instances over `hmm` (which must outlive what they boot).
std::unique_ptr<InstanceLauncher> LocalLauncher(hbm::Hmm* hmm, const ModelConfig& config,
                                                const InstanceOptions& options);
// Instance processes of `binary` that attach through `hmm_socket`; `cpus[d]` are device d's CPUs.
std::unique_ptr<InstanceLauncher> ProcessLauncher(std::string binary, std::string hmm_socket,
                                                  std::vector<std::vector<int>> cpus,
                                                  const ModelConfig& config,
                                                  const InstanceOptions& options);

class InstancePool {
 public:
  InstancePool(std::unique_ptr<InstanceLauncher> launcher, int capacity)
      : launcher_(std::move(launcher)), capacity_(capacity) {}
  // A fresh instance for `devices`.
  StatusOr<std::unique_ptr<Instance>> Boot(const std::vector<int>& devices) {
    return launcher_->Boot(devices);
  }
  // The standby for `devices` when `allow_standby` and there is one, else a fresh one.
  StatusOr<std::unique_ptr<Instance>> Take(const std::vector<int>& devices, bool allow_standby);
  // Boots a standby for `devices` unless there is one (evicting the least recently prepared).
  // Nothing with capacity 0.
  Status Prepare(const std::vector<int>& devices);
  int standby_count() const { return static_cast<int>(standby_.size()); }
  void Clear() { standby_.clear(); }

 private:
  std::unique_ptr<InstanceLauncher> launcher_;
  int capacity_;
  std::list<std::pair<std::vector<int>, std::unique_ptr<Instance>>> standby_;  // front = newest
};

}  // namespace emoe::engine

#endif  // ENGINE_SRC_INSTANCES_INSTANCE_POOL_H_
