// server/src/metrics.cc: the Prometheus registry (metrics.h). Series are plain atomics; the
// registry's maps are behind mu_. Render writes each family as HELP, TYPE and its samples, the
// numbers as the Go client's expfmt writes them (writeFloat: strconv 'g', shortest), except
// integral values, which are written without exponent.
#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace emoe::server {

const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kInterTokenBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                7.5,  10.0,  20.0, 40.0,  80.0};
const std::vector<double> kRequestLatencyBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const std::vector<double> kScaleBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1,     2.5,    5,     10,   25,    50,   100, 250,  600};

namespace {

[[noreturn]] void Misuse(const std::string& what) {
  std::fprintf(stderr, "emoe::server metrics: %s\n", what.c_str());
  std::abort();
}

void AddDouble(std::atomic<double>* a, double v) {
  double cur = a->load(std::memory_order_relaxed);
  while (!a->compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  return IsMetricName(s) && s.find(':') == std::string::npos && s.rfind("__", 0) != 0;
}

// The length of the valid UTF-8 sequence at s[i], or 0 when the byte there starts none.
size_t Utf8Length(const std::string& s, size_t i) {
  const unsigned char c = s[i];
  size_t n = 0;
  unsigned min = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) n = 2, min = 0x80;
  if ((c & 0xF0) == 0xE0) n = 3, min = 0x800;
  if ((c & 0xF8) == 0xF0) n = 4, min = 0x10000;
  if (n == 0 || i + n > s.size()) return 0;
  unsigned cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const unsigned char cc = s[i + k];
    if ((cc & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// `s` escaped for a label value (\\ \" \n) or, with !quotes, for HELP (\\ \n); invalid UTF-8
// becomes U+FFFD.
std::string Escape(const std::string& s, bool quotes) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else if (const size_t n = Utf8Length(s, i); n > 0) {
      out.append(s, i, n);
      i += n;
      continue;
    } else {
      out += "\xEF\xBF\xBD";
    }
    ++i;
  }
  return out;
}

// {a="x",b="y"} (with `extra` last, e.g. le="0.5"); "" for no labels.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (out.empty() ? "" : ",") + names[i] + "=\"" + Escape(values[i], true) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? out : "{" + out + "}";
}

}  // namespace

std::string PrometheusBound(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Go's 'g' with the shortest digits: %e when the exponent is < -4 or >= 6 ("shortest" makes
  // Go's precision 6 for that choice), else %f; both with the shortest round-trip digits.
  const std::to_chars_result sci =
      std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string s(buf, sci.ptr);
  const size_t e = s.find('e');
  int exp = 0;
  std::from_chars(s.data() + e + 1 + (s[e + 1] == '+'), s.data() + s.size(), exp);
  if (exp < -4 || exp >= 6) return s;
  const std::to_chars_result fixed =
      std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  return std::string(buf, fixed.ptr);
}

std::string PrometheusNumber(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return PrometheusBound(v);
}

void Counter::Inc(double v) {
  if (!(v >= 0)) return;
  AddDouble(&v_, v);
}

void Gauge::Add(double v) { AddDouble(&v_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i - 1] < bounds_[i]))) {
      Misuse("histogram bounds must be finite and strictly ascending; bound " + std::to_string(i) +
             " is " + PrometheusBound(bounds_[i]));
    }
  }
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AddDouble(&sum_, v);
}

std::vector<uint64_t> Histogram::cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

uint64_t Histogram::count() const { return cumulative().back(); }

double Histogram::sum() const { return sum_.load(std::memory_order_relaxed); }

struct Registry::Family {
  std::string name, help;
  Type type = Type::kGauge;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms
  // Series by label values (so rendered in label order).
  std::map<std::vector<std::string>, std::unique_ptr<Counter>> counters;
  std::map<std::vector<std::string>, std::unique_ptr<Gauge>> gauges;
  std::map<std::vector<std::string>, std::unique_ptr<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family* Registry::FamilyFor(const std::string& name, Type type, const std::string& help,
                                      const std::vector<std::string>& label_names,
                                      const std::vector<std::string>& label_values,
                                      const std::vector<double>* bounds) {
  if (label_values.size() != label_names.size()) {
    Misuse("metric " + name + ": " + std::to_string(label_values.size()) + " label values for " +
           std::to_string(label_names.size()) + " label names");
  }
  auto it = by_name_.find(name);
  if (it != by_name_.end()) {
    Family* f = it->second;
    if (f->type != type || f->label_names != label_names || (bounds && f->bounds != *bounds)) {
      Misuse("metric " + name + " registered again with another type, labels or buckets");
    }
    return f;
  }
  if (!IsMetricName(name)) Misuse("metric name '" + name + "' is not [a-zA-Z_:][a-zA-Z0-9_:]*");
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!IsLabelName(l) || (type == Type::kHistogram && l == "le") ||
        std::find(label_names.begin(), label_names.begin() + i, l) != label_names.begin() + i) {
      Misuse("metric " + name + ": label name '" + l + "' is invalid, reserved or repeated");
    }
  }
  auto f = std::make_unique<Family>();
  f->name = name;
  f->help = help;
  f->type = type;
  f->label_names = label_names;
  if (bounds) {
    Histogram check(*bounds);  // aborts on bad bounds now, not at the first series
    f->bounds = *bounds;
  }
  Family* raw = f.get();
  families_.push_back(std::move(f));
  by_name_[name] = raw;
  return raw;
}

Counter& Registry::counter(const std::string& name, const std::string& help,
                           const std::vector<std::string>& label_names,
                           const std::vector<std::string>& label_values) {
  const bool total = name.size() >= 6 && name.compare(name.size() - 6, 6, "_total") == 0;
  vmm::MutexLock l(&mu_);
  Family* f = FamilyFor(total ? name : name + "_total", Type::kCounter, help, label_names,
                        label_values, nullptr);
  std::unique_ptr<Counter>& s = f->counters[label_values];
  if (!s) s = std::make_unique<Counter>();
  return *s;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help,
                       const std::vector<std::string>& label_names,
                       const std::vector<std::string>& label_values) {
  vmm::MutexLock l(&mu_);
  Family* f = FamilyFor(name, Type::kGauge, help, label_names, label_values, nullptr);
  std::unique_ptr<Gauge>& s = f->gauges[label_values];
  if (!s) s = std::make_unique<Gauge>();
  return *s;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::vector<double>& bounds,
                               const std::vector<std::string>& label_names,
                               const std::vector<std::string>& label_values) {
  vmm::MutexLock l(&mu_);
  Family* f = FamilyFor(name, Type::kHistogram, help, label_names, label_values, &bounds);
  std::unique_ptr<Histogram>& s = f->histograms[label_values];
  if (!s) s = std::make_unique<Histogram>(bounds);
  return *s;
}

void Registry::AddCollector(std::function<void()> fn) {
  vmm::MutexLock l(&mu_);
  collectors_.push_back(std::move(fn));
}

std::string Registry::Render() const {
  vmm::MutexLock render(&render_mu_);
  std::vector<std::function<void()>> collectors;
  {
    vmm::MutexLock l(&mu_);
    collectors = collectors_;
  }
  for (const std::function<void()>& c : collectors) c();
  vmm::MutexLock l(&mu_);
  std::string out;
  for (const std::unique_ptr<Family>& f : families_) {
    static const char* const kTypes[] = {"counter", "gauge", "histogram"};
    out += "# HELP " + f->name + " " + Escape(f->help, false) + "\n";
    out += "# TYPE " + f->name + " " + kTypes[static_cast<int>(f->type)] + "\n";
    for (const auto& [values, c] : f->counters) {
      out +=
          f->name + LabelText(f->label_names, values) + " " + PrometheusNumber(c->value()) + "\n";
    }
    for (const auto& [values, g] : f->gauges) {
      out +=
          f->name + LabelText(f->label_names, values) + " " + PrometheusNumber(g->value()) + "\n";
    }
    for (const auto& [values, h] : f->histograms) {
      const std::vector<uint64_t> cum = h->cumulative();
      for (size_t i = 0; i < cum.size(); ++i) {
        const std::string le = i < f->bounds.size() ? PrometheusBound(f->bounds[i]) : "+Inf";
        out += f->name + "_bucket" + LabelText(f->label_names, values, "le=\"" + le + "\"") + " " +
               std::to_string(cum[i]) + "\n";
      }
      const std::string labels = LabelText(f->label_names, values);
      out += f->name + "_sum" + labels + " " + PrometheusNumber(h->sum()) + "\n";
      out += f->name + "_count" + labels + " " + std::to_string(cum.back()) + "\n";
    }
  }
  return out;
}

}  // namespace emoe::server
