// server/metrics.h: a Prometheus registry: counters, gauges and histograms, each family with
// its HELP, TYPE and label names, rendered in the text exposition format 0.0.4 (what
// `promtool check metrics` accepts: names [a-zA-Z_:][a-zA-Z0-9_:]*, escaped label values and
// HELP, histograms with cumulative _bucket{le} series ending in +Inf, _sum and _count, counters
// ending in _total). It knows nothing of what is measured (server/service.h names the metrics).
//
// vLLM's histogram boundaries are here once (the service's metrics use vLLM's meanings).
//
// Numbers are written as the Go client writes them (strconv 'g', shortest), except that an
// integral value below 2^53 is written as an integer without exponent (a byte counter reads
// 123456789, not 1.23456789e+08); +Inf, -Inf and NaN as Prometheus spells them. Histogram
// bounds ("le") exactly as the Go client: "0.005", "1", "2560", "+Inf".
//
// Misuse is a programming error and aborts naming it: a metric or label name outside the
// format's alphabet, a name registered again with another type, label names or buckets, a
// label "le" on a histogram, label values that do not match the label names in number, bounds
// not ascending and finite.
//
// Thread safety: every method from any thread. Updates are lock-free (atomics) once a series
// exists; creating a series and Render take the registry's mutex. Render runs the collectors
// one Render at a time (a collector need not be reentrant); a collector may create and set
// series, but must not call Render.
#ifndef SERVER_METRICS_H_
#define SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vmm/mutex.h"

namespace emoe::server {

// vLLM's buckets (vllm/v1/metrics/loggers.py).
extern const std::vector<double> kTtftBuckets;            // time_to_first_token_seconds
extern const std::vector<double> kInterTokenBuckets;      // inter_token_latency_seconds
extern const std::vector<double> kRequestLatencyBuckets;  // e2e / queue / prefill / decode
// Ours: scale latency and downtime, seconds (0.001 .. 600).
extern const std::vector<double> kScaleBuckets;

// `v` as the exposition format writes a sample value (see above): "0", "42", "0.25", "1e-07",
// "1.5e+300", "+Inf", "-Inf", "NaN".
std::string PrometheusNumber(double v);
// `bound` as the Go client writes a histogram's le label: strconv.FormatFloat(bound, 'g', -1).
std::string PrometheusBound(double bound);

class Counter {
 public:
  void Inc(double v = 1);  // v >= 0 (a negative or NaN v is dropped: counters never go down)
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
  explicit Histogram(std::vector<double> bounds);  // ascending, finite (else aborts)
  void Observe(double v);  // into the first bucket with v <= bound; a NaN v is dropped
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
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A series of family `name` with these label values (in the order of the family's label
  // names). The first call for a name fixes its type, help, label names (and buckets); a later
  // call with another type, label names or buckets aborts (a programming error; its help is not
  // compared). Label values are text (invalid UTF-8 is written as U+FFFD). The returned
  // reference lives as long as the registry. A counter's family name ends in "_total": "x" and
  // "x_total" name the same family "x_total" (as the Python client writes vLLM's counters).
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
  enum class Type { kCounter, kGauge, kHistogram };
  // The family `name` (created by the first call), checked against the arguments.
  Family* FamilyFor(const std::string& name, Type type, const std::string& help,
                    const std::vector<std::string>& label_names,
                    const std::vector<std::string>& label_values, const std::vector<double>* bounds)
      REQUIRES(mu_);

  mutable vmm::Mutex render_mu_ ACQUIRED_BEFORE(mu_);  // one Render (and its collectors) at a time
  mutable vmm::Mutex mu_;
  std::vector<std::unique_ptr<Family>> families_ GUARDED_BY(mu_);
  std::map<std::string, Family*> by_name_ GUARDED_BY(mu_);
  std::vector<std::function<void()>> collectors_ GUARDED_BY(mu_);
};

// The Content-Type of Render()'s output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace emoe::server

#endif  // SERVER_METRICS_H_
