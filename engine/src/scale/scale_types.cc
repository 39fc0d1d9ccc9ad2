#include <sstream>

#include "engine/scale_types.h"

namespace emoe::engine {

std::string DevicesText(const std::vector<int>& d) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < d.size(); ++i) o << (i ? "," : "") << d[i];
  o << ']';
  return o.str();
}

const char* ScaleMethodName(ScaleMethod m) {
  switch (m) {
    case ScaleMethod::kElastic:
      return "elastic";
    case ScaleMethod::kColdRestart:
      return "cold-restart";
    case ScaleMethod::kExtravagant:
      return "extravagant";
    case ScaleMethod::kColocated:
      return "colocated";
    case ScaleMethod::kHorizontal:
      return "horizontal";
  }
  return "?";
}

StatusOr<ScaleMethod> ParseScaleMethod(const std::string& name) {
  for (ScaleMethod m : {ScaleMethod::kElastic, ScaleMethod::kColdRestart, ScaleMethod::kExtravagant,
                        ScaleMethod::kColocated, ScaleMethod::kHorizontal}) {
    if (name == ScaleMethodName(m)) return m;
  }
  return Status::InvalidArgument("unknown scale method '" + name +
                                 "' (elastic, cold-restart, extravagant, colocated, horizontal)");
}

std::string ScaleOptions::Name() const {
  std::string n = ScaleMethodName(method);
  if (method == ScaleMethod::kElastic) {
    if (!zero_copy) n += "-no-zero-copy";
    if (!p2p) n += "-no-p2p";
    if (!preinit) n += "-no-preinit";
    if (!vm_remap) n += "-no-vm-remap";
  }
  if (drain) n += "-drain";
  return n;
}

StatusOr<ScaleOptions> ParseScaleOptions(const std::string& name) {
  ScaleOptions o;
  std::string base = name;
  // The ablations are suffixes in any order (Name() writes them in one): strip them until none
  // is left.
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (const char* abl : {"-drain", "-no-zero-copy", "-no-p2p", "-no-preinit", "-no-vm-remap"}) {
      const std::string a = abl;
      if (base.size() > a.size() && base.compare(base.size() - a.size(), a.size(), a) == 0) {
        base.resize(base.size() - a.size());
        stripped = true;
        if (a == "-no-zero-copy") o.zero_copy = false;
        if (a == "-no-p2p") o.p2p = false;
        if (a == "-no-preinit") o.preinit = false;
        if (a == "-no-vm-remap") o.vm_remap = false;
        if (a == "-drain") o.drain = true;
      }
    }
  }
  VMM_ASSIGN_OR_RETURN(o.method, ParseScaleMethod(base));
  if (o.method != ScaleMethod::kElastic && o.Name() != name) {
    return Status::InvalidArgument("ablations apply to 'elastic' only: '" + name + "'");
  }
  return o;
}

std::string ScaleReport::ToJson() const {
  std::ostringstream o;
  o.precision(6);
  o << "{\"name\":\"" << name << "\",\"from\":" << DevicesText(from_devices)
    << ",\"to\":" << DevicesText(to_devices) << ",\"command_s\":" << command_s
    << ",\"latency_s\":" << latency_s << ",\"downtime_s\":" << downtime_s << ",\"phases\":{";
  bool first = true;
  for (const auto& [k, v] : phase_s) {
    o << (first ? "" : ",") << "\"" << k << "\":" << v;
    first = false;
  }
  o << "},\"bytes_remapped\":" << bytes_remapped << ",\"bytes_p2p\":" << bytes_p2p
    << ",\"bytes_disk\":" << bytes_disk << ",\"bytes_copied\":" << bytes_copied
    << ",\"arena_before\":" << arena_before << ",\"arena_peak\":" << arena_peak
    << ",\"arena_after\":" << arena_after << ",\"pss_before_bytes\":" << pss_before_bytes
    << ",\"pss_peak_bytes\":" << pss_peak_bytes << ",\"experts_moved\":" << experts_moved
    << ",\"experts_retained\":" << experts_retained << ",\"requests_kept\":" << requests_kept
    << ",\"requests_kv_copied\":" << requests_kv_copied
    << ",\"requests_recomputed\":" << requests_recomputed
    << ",\"requests_drained\":" << requests_drained << ",\"kv_shrunk_bytes\":" << kv_shrunk_bytes
    << ",\"cleanup_errors\":" << cleanup_errors << ",\"p2p_copy_s\":" << p2p_copy_s
    << ",\"switch_steps_waited\":" << switch_steps_waited << ",\"switch_step_s\":" << switch_step_s
    << ",\"switch_step_tokens\":" << switch_step_tokens << "}";
  return o.str();
}

}  // namespace emoe::engine
