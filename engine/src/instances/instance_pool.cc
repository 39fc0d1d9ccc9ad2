#include "instances/instance_pool.h"

#include "engine/local_instance.h"
#include "engine/remote_instance.h"

namespace emoe::engine {

namespace {

class Local : public InstanceLauncher {
 public:
  Local(hbm::Hmm* hmm, ModelConfig config, InstanceOptions options)
      : hmm_(hmm), config_(std::move(config)), options_(options) {}
  StatusOr<std::unique_ptr<Instance>> Boot(const std::vector<int>& devices) override {
    std::vector<std::vector<int>> cpus;
    for (int d : devices) cpus.push_back(hmm_->device(d).spec().cpus);
    VMM_ASSIGN_OR_RETURN(auto inst, LocalInstance::Boot(config_, std::move(cpus), options_, hmm_));
    return std::unique_ptr<Instance>(std::move(inst));
  }

 private:
  hbm::Hmm* hmm_;
  ModelConfig config_;
  InstanceOptions options_;
};

class Process : public InstanceLauncher {
 public:
  Process(std::string binary, std::string socket, std::vector<std::vector<int>> cpus,
          ModelConfig config, InstanceOptions options)
      : binary_(std::move(binary)),
        socket_(std::move(socket)),
        cpus_(std::move(cpus)),
        config_(std::move(config)),
        options_(options) {}
  StatusOr<std::unique_ptr<Instance>> Boot(const std::vector<int>& devices) override {
    std::vector<std::vector<int>> cpus;
    for (int d : devices) cpus.push_back(cpus_.at(d));
    VMM_ASSIGN_OR_RETURN(
        auto inst, RemoteInstance::Launch(binary_, socket_, config_, std::move(cpus), options_));
    return std::unique_ptr<Instance>(std::move(inst));
  }

 private:
  std::string binary_, socket_;
  std::vector<std::vector<int>> cpus_;
  ModelConfig config_;
  InstanceOptions options_;
};

}  // namespace

std::unique_ptr<InstanceLauncher> LocalLauncher(hbm::Hmm* hmm, const ModelConfig& config,
                                                const InstanceOptions& options) {
  return std::make_unique<Local>(hmm, config, options);
}

std::unique_ptr<InstanceLauncher> ProcessLauncher(std::string binary, std::string hmm_socket,
                                                  std::vector<std::vector<int>> cpus,
                                                  const ModelConfig& config,
                                                  const InstanceOptions& options) {
  return std::make_unique<Process>(std::move(binary), std::move(hmm_socket), std::move(cpus),
                                   config, options);
}

StatusOr<std::unique_ptr<Instance>> InstancePool::Take(const std::vector<int>& devices,
                                                       bool allow_standby) {
  if (allow_standby) {
    for (auto it = standby_.begin(); it != standby_.end(); ++it) {
      if (it->first == devices) {
        auto inst = std::move(it->second);
        standby_.erase(it);
        return inst;
      }
    }
  }
  return launcher_->Boot(devices);
}

Status InstancePool::Prepare(const std::vector<int>& devices) {
  if (capacity_ == 0) return Status::Ok();
  for (const auto& [key, inst] : standby_) {
    if (key == devices) return Status::Ok();
  }
  VMM_ASSIGN_OR_RETURN(auto inst, launcher_->Boot(devices));
  standby_.emplace_front(devices, std::move(inst));
  while (static_cast<int>(standby_.size()) > capacity_) standby_.pop_back();
  return Status::Ok();
}

}  // namespace emoe::engine
