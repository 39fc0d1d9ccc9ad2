// server/metrics.h: a Prometheus registry: counters, gauges and histograms, each family with
// its HELP, TYPE and label names, rendered in the text exposition format 0.0.4 (what
// `promtool check metrics` accepts: names [a-zA-Z_:][a-zA-Z0-9_:]*, escaped label values and
// HELP, histograms with cumulative _bucket{le} series ending in +Inf, _sum and _count, counters
// ending in _total). It knows nothing of what is measured (server/service.h names the metrics).
//
// vLLM's histogram boundaries are here once (the service's metrics use vLLM's meanings).
//
// Thread safety: every method from any thread. Updates are lock-free (atomics) once a series
// exists; creating a series and Render take the registry's mutex.
#ifndef SERVER_METRICS_H_
#define SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace emoe::server {

// vLLM's buckets (vllm/v1/metrics/loggers.py).
extern const std::vector<double> kTtftBuckets;          // time_to_first_token_seconds
extern const std::vector<double> kInterTokenBuckets;    // inter_token_latency_seconds
extern const std::vector<double> kRequestLatencyBuckets;  // e2e / queue / prefill / decode
// Ours: scale latency and downtime, seconds (0.001 .. 600).
extern const std::vector<double> kScaleBuckets;

class Counter {
 public:
  void Inc(double v = 1);  // v >= 0
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Gauge {
 public:
  void Set(double v) { v_.store(v, std::memory_order_relaxed); }
  void Add(double v);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // ascending, finite
  void Observe(double v);
  // Cumulative counts per bound, then +Inf (== count()).
  std::vector<uint64_t> cumulative() const;
  uint64_t count() const;
  double sum() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), + overflow
  std::atomic<double> sum_{0};
};

class Registry {
 public:
  // A series of family `name` with these label values (in the order of the family's label
  // names). The first call for a name fixes its type, help, label names (and buckets); a later
  // call with another type or other label names aborts (a programming error). The returned
  // reference lives as long as the registry.
  Counter& counter(const std::string& name, const std::string& help,
                   const std::vector<std::string>& label_names = {},
                   const std::vector<std::string>& label_values = {});
  Gauge& gauge(const std::string& name, const std::string& help,
               const std::vector<std::string>& label_names = {},
               const std::vector<std::string>& label_values = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<double>& bounds,
                       const std::vector<std::string>& label_names = {},
                       const std::vector<std::string>& label_values = {});
  // Runs before every Render (e.g. to set gauges from a snapshot), in the order added.
  void AddCollector(std::function<void()> fn);
  // The text format 0.0.4, families in the order first created, series in label order.
  std::string Render() const;

 private:
  struct Family;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
  std::map<std::string, Family*> by_name_;
  std::vector<std::function<void()>> collectors_;
};

// The Content-Type of Render()'s output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace emoe::server

#endif  // SERVER_METRICS_H_
