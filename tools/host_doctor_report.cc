// host_doctor's text and JSON reports (host_doctor_report.h).
#include "tools/host_doctor_report.h"

#include <cstdio>
#include <string>

namespace emoe::tools {
namespace {

// ---------------------------------------------------------------------------------------------
// Text

std::string Gib(long long bytes) {
  if (bytes < 0) return "unknown";
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f GiB", static_cast<double>(bytes) / (1LL << 30));
  return b;
}

std::string CpuList(const std::vector<int>& cpus) {
  std::vector<std::string> parts;
  for (int c : cpus) parts.push_back(std::to_string(c));
  return Join(parts, ",");
}

void PrintNuma(const NumaFacts& f) {
  std::printf("== NUMA (%s)\n", f.available ? "libnuma" : "unavailable: the whole host as node 0");
  for (const auto& n : f.nodes) {
    std::printf("  node %d: cpus [%s], memory %s total, %s free\n", n.id, CpuList(n.cpus).c_str(),
                Gib(n.mem_total_bytes).c_str(), Gib(n.mem_free_bytes).c_str());
  }
  if (f.available) {
    std::printf("  mbind: %s\n", f.mbind_error.empty() ? "works" : f.mbind_error.c_str());
  }
}

void PrintHugetlb(const Report& r) {
  const vmm::HugePagePool& p = r.pool;
  std::printf("== hugetlb 2 MiB pool\n");
  std::printf("  global: total %ld, free %ld, reserved %ld, surplus %ld, available %ld\n", p.total,
              p.free, p.reserved, p.surplus, p.available());
  for (size_t i = 0; i < r.numa.pools.size(); ++i) {
    const vmm::HugePagePool& n = r.numa.pools[i];
    std::printf("  node %d: total %ld, free %ld, surplus %ld\n", r.numa.nodes[i].id, n.total,
                n.free, n.surplus);
  }
}

void PrintThp(const ThpFacts& f) {
  std::printf("== shmem THP\n  shmem_enabled: %s\n  hugepages-2048kB/shmem_enabled: %s\n  %s\n",
              f.mode.global.empty() ? "(absent)" : f.mode.global.c_str(),
              f.mode.size_2m.empty() ? "(absent)" : f.mode.size_2m.c_str(),
              f.usable ? "usable: memfd + MADV_HUGEPAGE gets 2 MiB pages" : f.reason.c_str());
}

void PrintUring(const UringFacts& f) {
  std::printf("== io_uring\n");
  if (!f.available) {
    std::printf("  unavailable: %s (kernel.io_uring_disabled=%s, seccomp filter: %s)\n",
                f.error.c_str(), f.disabled.empty() ? "absent" : f.disabled.c_str(),
                f.seccomp ? "yes" : "no");
    return;
  }
  std::printf("  ring: ok; features: %s\n", Join(FeatureNames(f.features), " ").c_str());
  std::printf("  SQPOLL: %s (optional: a kernel thread polls submissions, saving syscalls)\n",
              f.sqpoll.empty() ? "available" : ("unavailable: " + f.sqpoll).c_str());
  std::printf("  opcodes: %d of %d supported\n ", f.supported, f.known);
  for (auto [name, ok] : f.opcodes) std::printf(" %s:%s", name, ok ? "yes" : "no");
  std::printf("\n  READ_FIXED needs registered buffers, counted against RLIMIT_MEMLOCK\n");
}

void PrintCaps(const CapFacts& f) {
  std::printf("== capabilities (effective/permitted)\n");
  if (!f.error.empty()) std::printf("  %s\n", f.error.c_str());
  for (const auto& c : f.caps) {
    std::printf("  %-13s %-3s/%-3s  %s\n", c.name, c.effective ? "yes" : "no",
                c.permitted ? "yes" : "no", c.enables);
  }
  std::printf("  RLIMIT_MEMLOCK: %s\n", f.memlock_bytes < 0
                                            ? "unlimited"
                                            : (std::to_string(f.memlock_bytes) + " bytes").c_str());
}

void PrintVerdicts(const std::vector<Verdict>& verdicts) {
  std::printf("\n== verdict\n");
  for (const auto& v : verdicts) {
    std::printf("  %-14s %-9s %s\n", v.feature.c_str(), v.state.c_str(), v.detail.c_str());
    if (v.state != "OK" && !v.fix.empty()) std::printf("  %-24s fix: %s\n", "", v.fix.c_str());
  }
}

}  // namespace

void PrintText(const Report& r) {
  PrintNuma(r.numa);
  PrintHugetlb(r);
  PrintThp(r.thp);
  PrintUring(r.uring);
  PrintCaps(r.caps);
  std::printf("== O_DIRECT in %s: %s\n", r.odirect.dir.c_str(),
              r.odirect.works ? "works" : r.odirect.error.c_str());
  if (!r.odirect.tested.empty()) std::printf("  tested on %s\n", r.odirect.tested.c_str());
  std::printf("== vm.max_map_count: %ld (recommended >= %ld)\n", r.max_map_count,
              kRecommendedMaxMapCount);
  PrintVerdicts(r.verdicts);
}

namespace {

// ---------------------------------------------------------------------------------------------
// JSON

std::string Quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\u%04x", static_cast<unsigned>(c));
      o += b;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

std::string Bool(bool b) { return b ? "true" : "false"; }

std::string Array(const std::vector<std::string>& json_items) {
  return "[" + Join(json_items, ", ") + "]";
}

// A JSON object built field by field from values that are already JSON.
class Object {
 public:
  Object& Add(const std::string& key, const std::string& json) {
    fields_.push_back(Quote(key) + ": " + json);
    return *this;
  }
  Object& Str(const std::string& key, const std::string& s) { return Add(key, Quote(s)); }
  Object& Int(const std::string& key, long long v) { return Add(key, std::to_string(v)); }
  Object& Flag(const std::string& key, bool b) { return Add(key, Bool(b)); }
  std::string Compact() const { return "{" + Join(fields_, ", ") + "}"; }
  std::string Lines() const { return "{\n  " + Join(fields_, ",\n  ") + "\n}"; }

 private:
  std::vector<std::string> fields_;
};

std::string PoolJson(const vmm::HugePagePool& p) {
  return Object()
      .Int("total", p.total)
      .Int("free", p.free)
      .Int("reserved", p.reserved)
      .Int("surplus", p.surplus)
      .Int("available", p.available())
      .Compact();
}

std::string NumaJson(const NumaFacts& f) {
  std::vector<std::string> nodes;
  for (size_t i = 0; i < f.nodes.size(); ++i) {
    const vmm::NumaNode& n = f.nodes[i];
    std::vector<std::string> cpus;
    for (int c : n.cpus) cpus.push_back(std::to_string(c));
    Object o;
    o.Int("id", n.id)
        .Add("cpus", Array(cpus))
        .Int("mem_total_bytes", n.mem_total_bytes)
        .Int("mem_free_bytes", n.mem_free_bytes);
    if (i < f.pools.size()) o.Add("hugepages", PoolJson(f.pools[i]));
    nodes.push_back(o.Compact());
  }
  return Object()
      .Flag("available", f.available)
      .Str("mbind_error", f.mbind_error)
      .Add("nodes", Array(nodes))
      .Compact();
}

std::string ThpJson(const ThpFacts& f) {
  return Object()
      .Str("global", f.mode.global)
      .Str("size_2m", f.mode.size_2m)
      .Flag("usable", f.usable)
      .Str("reason", f.reason)
      .Compact();
}

std::string UringJson(const UringFacts& f) {
  std::vector<std::string> features;
  for (const auto& name : FeatureNames(f.features)) features.push_back(Quote(name));
  Object opcodes;
  for (auto [name, ok] : f.opcodes) opcodes.Flag(name, ok);
  return Object()
      .Flag("available", f.available)
      .Str("error", f.error)
      .Str("io_uring_disabled", f.disabled)
      .Flag("seccomp_filter", f.seccomp)
      .Add("features", Array(features))
      .Flag("sqpoll", f.available && f.sqpoll.empty())
      .Str("sqpoll_error", f.sqpoll)
      .Int("opcodes_supported", f.supported)
      .Int("opcodes_known", f.known)
      .Add("opcodes", opcodes.Compact())
      .Compact();
}

std::string CapsJson(const CapFacts& f) {
  Object held;
  for (const auto& c : f.caps) {
    held.Add(c.name, Object()
                         .Flag("effective", c.effective)
                         .Flag("permitted", c.permitted)
                         .Str("enables", c.enables)
                         .Compact());
  }
  return Object()
      .Str("error", f.error)
      .Add("held", held.Compact())
      .Int("rlimit_memlock_bytes", f.memlock_bytes)  // -1: unlimited
      .Compact();
}

std::string ODirectJson(const ODirectFacts& f) {
  return Object()
      .Str("dir", f.dir)
      .Flag("works", f.works)
      .Flag("unsupported", f.unsupported)
      .Str("tested", f.tested)
      .Str("error", f.error)
      .Compact();
}

std::string VerdictsJson(const std::vector<Verdict>& verdicts) {
  std::vector<std::string> items;
  for (const auto& v : verdicts) {
    items.push_back(Object()
                        .Str("feature", v.feature)
                        .Str("state", v.state)
                        .Str("detail", v.detail)
                        .Str("fix", v.fix)
                        .Compact());
  }
  return Array(items);
}

}  // namespace

void PrintJson(const Report& r) {
  const std::string json = Object()
                               .Add("numa", NumaJson(r.numa))
                               .Add("hugepages", PoolJson(r.pool))
                               .Add("shmem_thp", ThpJson(r.thp))
                               .Add("io_uring", UringJson(r.uring))
                               .Add("capabilities", CapsJson(r.caps))
                               .Add("o_direct", ODirectJson(r.odirect))
                               .Int("max_map_count", r.max_map_count)
                               .Add("verdicts", VerdictsJson(r.verdicts))
                               .Lines();
  std::printf("%s\n", json.c_str());
}

bool AnyMissing(const std::vector<Verdict>& verdicts) {
  for (const auto& v : verdicts) {
    if (v.state == "MISSING") return true;
  }
  return false;
}

}  // namespace emoe::tools
