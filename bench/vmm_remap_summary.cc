// bench/vmm_remap_summary.cc: vmm_remap_bench's results (collected by its reporter) and the
// summary printed after the runs: copy/remap ratio tables, the target and what was left out.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "vmm/vmm.h"
#include "vmm_remap_bench.h"

namespace emoe::bench::remap {
namespace {

struct Result {
  std::vector<double> seconds;  // real (or manual) time per iteration, one entry per repetition
  double items_per_second = 0;
  std::string error;
};

std::map<std::string, Result>& Results() {  // registered benchmark name -> its runs
  static std::map<std::string, Result> r;
  return r;
}

}  // namespace

void CollectingReporter::ReportRuns(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    if (run.run_type != Run::RT_Iteration) continue;  // aggregates are recomputed below
    Result& r = Results()[run.run_name.function_name];
    if (run.error_occurred) {
      r.error = run.error_message;
    } else if (run.iterations > 0) {
      r.seconds.push_back(run.real_accumulated_time / static_cast<double>(run.iterations));
      if (auto it = run.counters.find("items_per_second"); it != run.counters.end()) {
        r.items_per_second = it->second.value;
      }
    }
  }
  ConsoleReporter::ReportRuns(runs);
}

namespace {

// Median seconds per iteration of a benchmark of this run, or 0 if it did not run.
double Median(const std::string& name) {
  auto it = Results().find(name);
  if (it == Results().end() || it->second.seconds.empty()) return 0;
  std::vector<double> v = it->second.seconds;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string Ratio(double copy, double op) {
  if (copy <= 0 || op <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof(b), copy / op >= 10 ? "%.0fx" : "%.2fx", copy / op);
  return b;
}

std::string Ms(double seconds) {
  if (seconds <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof(b), seconds < 1e-3 ? "%.4f" : "%.2f", seconds * 1e3);
  return b;
}

// The copy/remap ratio table, per kind and size.
void PrintRatioTable() {
  std::printf(
      "\n== copy/remap ratio: memcpy time / operation time for the same bytes (medians, same run;"
      " >1 = faster than copying)\n"
      "   cycle = map+populate then unmap\n");
  std::printf("%-13s %8s %10s %11s %12s %10s %10s %10s %10s\n", "page kind", "size", "memcpy ms",
              "map+pop ms", "map+populate", "cycle", "lazy+touch", "move", "unmap");
  for (auto& k : Kinds()) {
    for (uint64_t size : k->sizes) {
      const std::string key = k->name + "/" + SizeName(size);
      const double copy = Median("copy/" + key);
      if (copy <= 0) continue;  // filtered out
      const double map = Median("map_populate/" + key), unmap = Median("unmap/" + key);
      std::printf("%-13s %8s %10s %11s %12s %10s %10s %10s %10s\n", k->name.c_str(),
                  SizeName(size).c_str(), Ms(copy).c_str(), Ms(map).c_str(),
                  Ratio(copy, map).c_str(),
                  Ratio(copy, map > 0 && unmap > 0 ? map + unmap : 0).c_str(),
                  Ratio(copy, Median("lazy_touch/" + key)).c_str(),
                  Ratio(copy, Median("move/" + key)).c_str(), Ratio(copy, unmap).c_str());
    }
  }
}

// The slot table: copy vs remap and swap of one slot.
void PrintSlotTable(const Config& c) {
  std::printf(
      "\n== slots (expert redistribution): memcpy of a slot / remap of it (unmap + map populated);"
      " swap of two slots vs copying both\n");
  std::printf("%-13s %8s %10s %10s %10s %10s %10s\n", "page kind", "slot", "memcpy us", "remap us",
              "remap", "swap us", "swap");
  for (auto& k : Kinds()) {
    if (!k->slots) continue;
    for (uint64_t slot : c.slot_sizes) {
      const std::string key = k->name + "/" + SizeName(slot);
      const double copy = Median("slot_copy/" + key);
      if (copy <= 0) continue;
      const double remap = Median("slot_remap/" + key), swap = Median("slot_swap/" + key);
      auto us = [](double s) {
        char b[32];
        std::snprintf(b, sizeof(b), "%.1f", s * 1e6);
        return s > 0 ? std::string(b) : std::string("-");
      };
      std::printf("%-13s %8s %10s %10s %10s %10s %10s\n", k->name.c_str(), SizeName(slot).c_str(),
                  us(copy).c_str(), us(remap).c_str(), Ratio(copy, remap).c_str(), us(swap).c_str(),
                  Ratio(2 * copy, swap).c_str());
    }
  }
}

void PrintAllocator() {
  if (auto it = Results().find("allocator/random_alloc_free");
      it != Results().end() && it->second.items_per_second > 0) {
    std::printf("\n== buddy allocator: %.2f M random allocate/free operations per second\n",
                it->second.items_per_second / 1e6);
  }
}

// The target's line for one page kind: the 1 GiB row, or why it was not measured and the
// largest size that was.
void PrintTarget(const Config& c, vmm::PageKind kind) {
  const std::string name = vmm::PageKindName(kind);
  const char* note =
      kind == vmm::PageKind::kSmall4K ? " (4 KiB pages: no target, shown for contrast)" : "";
  // The largest size measured for this kind.
  uint64_t size = 0;
  double copy = 0, map = 0;
  for (uint64_t s : kSizes) {
    const std::string key = name + "/" + SizeName(s);
    if (Median("copy/" + key) > 0 && Median("map_populate/" + key) > 0) {
      size = s;
      copy = Median("copy/" + key);
      map = Median("map_populate/" + key);
    }
  }
  if (size == 1024 * kMiB) {
    std::printf("%-13s 1 GiB: map+populate %s ms vs memcpy %s ms: %s%s\n", name.c_str(),
                Ms(map).c_str(), Ms(copy).c_str(), Ratio(copy, map).c_str(),
                *note != '\0'       ? note
                : copy / map >= 100 ? "  MET"
                                    : "  NOT MET");
    return;
  }
  std::string why = "filtered out by --benchmark_filter";
  if (std::none_of(Kinds().begin(), Kinds().end(),
                   [&](const auto& k) { return k->kind == kind; })) {
    why = "page kind unavailable, see below";
  } else if (c.max_bytes < 1024 * kMiB) {
    why = "capped by VMM_BENCH_MAX_MB";
  } else {
    for (const auto& skipped : Skipped()) {
      if (skipped.rfind(name + " 1024MiB", 0) == 0) why = "skipped: " + skipped;
    }
  }
  std::printf("%-13s 1 GiB: not measured (%s)", name.c_str(), why.c_str());
  if (size > 0) {
    std::printf("; largest measured %s: map+populate %s ms vs memcpy %s ms: %s%s",
                SizeName(size).c_str(), Ms(map).c_str(), Ms(copy).c_str(), Ratio(copy, map).c_str(),
                note);
  }
  std::printf("\n");
}

}  // namespace

int PrintSummary(const Config& c) {
  PrintRatioTable();
  PrintSlotTable(c);
  PrintAllocator();
  // The target, and what the other kinds give at the same size.
  std::printf("\n== target: map+populate of 1 GiB of 2 MiB pages >= 100x faster than copying it\n");
  for (vmm::PageKind kind :
       {vmm::PageKind::kHugetlb2M, vmm::PageKind::kShmemThp2M, vmm::PageKind::kSmall4K}) {
    PrintTarget(c, kind);
  }

  for (const auto& u : Unavailable()) std::printf("unavailable: %s\n", u.c_str());
  for (const auto& s : Skipped()) std::printf("skipped: %s\n", s.c_str());
  int failed = 0;
  for (const auto& [name, r] : Results()) {
    if (r.error.empty()) continue;
    std::printf("FAILED: %s: %s\n", name.c_str(), r.error.c_str());
    ++failed;
  }
  return failed;
}

}  // namespace emoe::bench::remap
