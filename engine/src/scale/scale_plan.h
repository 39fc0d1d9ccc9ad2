// engine/src/scale/scale_plan.h: what an elastic scale event will do, computed before anything
// changes, as pure functions of their inputs (tested without memory): the new placement and the
// redistribution, the copies to make (dense weights to each added device, each incoming expert
// to its new owner), the records freed after the switch, and the device memory the event needs
// per device and usage, checked against one HMM statistics snapshot.
//
// Thread safety: pure functions over values.
#ifndef ENGINE_SRC_SCALE_SCALE_PLAN_H_
#define ENGINE_SRC_SCALE_SCALE_PLAN_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "engine/scale_types.h"
#include "experts/placement.h"
#include "experts/plan.h"
#include "hbm/control.h"

namespace emoe::engine {

struct ScalePlan {
  std::vector<int> from, to;                   // devices before and after (sorted)
  experts::ExpertPlacement placement;          // after the event
  experts::RedistributionPlan redistribution;  // validated
  std::vector<int> added, removed;
  std::vector<std::string> dense;  // HMM names of the non-expert tensors
  std::map<std::pair<int, int>, std::vector<std::string>> expert_names;  // (layer, expert)
  struct Copy {
    std::vector<std::string> names;  // one group: the dense weights, or one expert's tensors
    int from = 0, to = 0;
    hbm::Usage usage = hbm::Usage::kWeights;
  };
  // Dense weights to each added device from the first serving device, then every moved expert
  // from its old owner to its new one.
  std::vector<Copy> copies;
  // (record, device) pairs of the experts that left their device: freed after the switch.
  std::vector<std::pair<std::string, int>> outgoing;
};

// Plans the move of the configuration (`placement` over `from`, weights named prefix + name) to
// `to`: minimal movement (experts::Rebalance). kInvalidArgument for a plan that cannot be.
StatusOr<ScalePlan> PlanElastic(const experts::ExpertPlacement& placement,
                                const std::vector<int>& from, const std::vector<int>& to,
                                const std::vector<TensorSpec>& specs, const std::string& prefix);

// Sizes the plan's memory needs are computed from (asked of the HMM by the procedure).
struct PlanSizes {
  uint64_t dense_bytes = 0;  // what each added device receives (each tensor aligned)
  std::map<std::pair<int, int>, uint64_t> expert_extent_bytes;  // of each moved expert
  uint64_t expert_bytes = 0;  // one expert's extent (the ablations' private copies)
};

// The bytes each device of the plan's `to` must find free, per usage and in total, given
// `stats` (one snapshot of the HMM), the devices with a KV store already (`has_store`), the KV
// bytes of a new store, and the ablations in `o`. kResourceExhausted naming the device, the usage
// and the bytes when an arena cannot hold its part ("serving continues on <from>"). On success:
// device -> total bytes (what KvStoreSet::ShrinkAhead makes room for).
StatusOr<std::map<int, uint64_t>> PlanNeed(const ScalePlan& plan, const PlanSizes& sizes,
                                           const std::vector<hbm::DeviceStats>& stats,
                                           const std::set<int>& has_store, uint64_t kv_bytes,
                                           const ScaleOptions& o, int num_layers);

}  // namespace emoe::engine

#endif  // ENGINE_SRC_SCALE_SCALE_PLAN_H_
