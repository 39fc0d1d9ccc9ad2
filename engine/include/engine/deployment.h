// engine/deployment.h: THE rule for which device loads which tensor.
//
// Thread safety: pure functions.
#ifndef ENGINE_DEPLOYMENT_H_
#define ENGINE_DEPLOYMENT_H_

#include <functional>
#include <vector>

#include "engine/model.h"
#include "experts/placement.h"
#include "hbm/control.h"

namespace emoe::engine {

// Experts go to their owner under `placement` (usage kExperts, one group "layer<L>.expert<E>"
// each: an expert's tensors share one extent and move together); every other tensor to each of
// `devices` (usage kWeights). `want(spec, device)` (null: everything) filters; tensors left
// with no device are not in the table.
hbm::PlacementTable DeploymentTable(
    const std::vector<TensorSpec>& specs, const std::vector<int>& devices,
    const experts::ExpertPlacement& placement,
    const std::function<bool(const TensorSpec&, int)>& want = nullptr);

}  // namespace emoe::engine

#endif  // ENGINE_DEPLOYMENT_H_
