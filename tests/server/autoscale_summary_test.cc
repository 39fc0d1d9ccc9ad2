// The autoscaler evaluation's summary (bench/autoscale_eval.h) on small hand-written inputs:
// serve_bench reports and server autoscale logs, attainment per minute of trace time, the
// violations and reaction times, device-seconds, scale events, steady minutes, and malformed
// inputs named.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "bench/autoscale_eval.h"

namespace emoe::bench {
namespace {

using nlohmann::json;

constexpr double kStart = 1700000000;  // the load's start_unix_s in every input

// A serve_bench report: `rows` per_request rows, SLO TTFT <= 1000 ms, TPOT <= 100 ms.
json Report(const json& rows, double time_scale = 1, double wall_s = 100) {
  return {{"start_unix_s", kStart},
          {"time_scale", time_scale},
          {"wall_s", wall_s},
          {"failed", 0},
          {"workload", "test"},
          {"device_seconds", 150.5},
          {"slo", {{"ttft_ms", 1000}, {"tpot_ms", 100}}},
          {"ttft_ms", {{"p50", 10}, {"p90", 20}, {"p99", 30}, {"mean", 12}, {"max", 31}}},
          {"tpot_ms", nullptr},
          {"per_request", rows}};
}

json Ok(double sent_s, double ttft_ms, double tpot_ms) {
  return {{"sent_s", sent_s}, {"ttft_ms", ttft_ms}, {"tpot_ms", tpot_ms}};
}

LoadRun Load(const json& report) {
  auto l = ParseLoad(report.dump(), "load.json");
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? *l : LoadRun{};
}

std::string Sample(double t, int devices, const json& attainment, int window = 10) {
  return json({{"kind", "sample"},
               {"unix_s", kStart + t},
               {"devices", devices},
               {"scaling", false},
               {"attainment", attainment},
               {"window_requests", window},
               {"future_field", 1}})
             .dump() +
         "\n";
}

std::string Event(double start, double end, int from, int to, const char* outcome,
                  const char* source = "autoscaler") {
  return json({{"kind", "event"},
               {"unix_s", kStart + end},
               {"start_unix_s", kStart + start},
               {"from", from},
               {"to", to},
               {"method", "elastic"},
               {"source", source},
               {"outcome", outcome},
               {"latency_s", end - start},
               {"downtime_s", 0},
               {"error", ""}})
             .dump() +
         "\n";
}

const char kStartRow[] =
    R"({"kind":"start","unix_s":1700000000,"mode":"slo","method":"elastic","min_devices":1,)"
    R"("max_devices":4,"target_attainment":0.9,"interval_s":1})"
    "\n";

ServerLog Log(const std::string& text) {
  auto l = ParseServerLog(text, "autoscale.jsonl", kStart);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? *l : ServerLog{};
}

TEST(ParseLoad, ReadsRowsAndSlo) {
  json rows = {Ok(0.5, 10, 5), {{"sent_s", 1.0}, {"failure", "HTTP 503"}}};
  const LoadRun l = Load(Report(rows, 10));
  EXPECT_EQ(l.start_unix_s, kStart);
  EXPECT_EQ(l.time_scale, 10);
  ASSERT_EQ(l.requests.size(), 2u);
  EXPECT_TRUE(l.requests[0].ok);
  EXPECT_FALSE(l.requests[1].ok);
  EXPECT_EQ(*l.slo_ttft_ms, 1000);
  EXPECT_EQ(*l.device_seconds, 150.5);
}

TEST(ParseLoad, MalformedNamed) {
  auto not_json = ParseLoad("{oops", "a/load.json");
  EXPECT_NE(not_json.status().message().find("a/load.json: not a JSON object"), std::string::npos);
  json r = Report(json::array());
  r.erase("start_unix_s");
  auto no_start = ParseLoad(r.dump(), "load.json");
  EXPECT_EQ(no_start.status().code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(no_start.status().message().find("\"start_unix_s\""), std::string::npos);
  r = Report(json::array());
  r.erase("per_request");
  EXPECT_NE(ParseLoad(r.dump(), "load.json").status().message().find("--per_request"),
            std::string::npos);
  r = Report({Ok(1, 2, 3), {{"sent_s", "soon"}}});
  const std::string m = ParseLoad(r.dump(), "load.json").status().message();
  EXPECT_NE(m.find("per_request[1]: \"sent_s\" is not a number"), std::string::npos) << m;
  r = Report({{{"sent_s", 1}}});  // succeeded without a TTFT
  EXPECT_NE(ParseLoad(r.dump(), "load.json").status().message().find("\"ttft_ms\""),
            std::string::npos);
}

TEST(ParseServerLog, KindsUnknownIgnoredTimesRelative) {
  const ServerLog l = Log(std::string(kStartRow) + Sample(1, 2, 0.95) + "\n" +
                          R"({"kind":"decision","unix_s":1700000001,"action":"up"})" + "\n" +
                          R"({"kind":"from_the_future","x":1})" + "\n" +
                          Sample(1.25, 2, nullptr, 0) + Event(2, 3.5, 2, 3, "ok"));
  EXPECT_EQ(l.mode, "slo");
  EXPECT_EQ(*l.target_attainment, 0.9);
  ASSERT_EQ(l.samples.size(), 2u);
  EXPECT_DOUBLE_EQ(l.samples[0].t_s, 1);
  EXPECT_FALSE(l.samples[1].attainment.has_value());  // an empty window
  EXPECT_EQ(l.decisions, 1);
  ASSERT_EQ(l.events.size(), 1u);
  EXPECT_DOUBLE_EQ(l.events[0].start_s, 2);
  EXPECT_DOUBLE_EQ(l.events[0].end_s, 3.5);
  EXPECT_EQ(l.events[0].to, 3);
}

TEST(ParseServerLog, MalformedLinesNamed) {
  auto bad = ParseServerLog(std::string(kStartRow) + "not json\n", "x.jsonl", kStart);
  EXPECT_EQ(bad.status().code(), vmm::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("x.jsonl:2: not a JSON object"), std::string::npos);
  auto no_kind = ParseServerLog(R"({"unix_s":1})", "x.jsonl", kStart);
  EXPECT_NE(no_kind.status().message().find("x.jsonl:1: no \"kind\""), std::string::npos);
  auto no_devices = ParseServerLog(R"({"kind":"sample","unix_s":1})", "x.jsonl", kStart);
  EXPECT_NE(no_devices.status().message().find("x.jsonl:1: \"devices\""), std::string::npos);
  auto no_outcome = ParseServerLog(
      R"({"kind":"event","unix_s":2,"start_unix_s":1,"from":1,"to":2})", "x.jsonl", kStart);
  EXPECT_NE(no_outcome.status().message().find("\"outcome\""), std::string::npos);
}

TEST(AttainmentPerMinute, BinsBySendTimeInTraceMinutes) {
  // time_scale 10: a trace minute is 6 s of the load. Minute 0: 2 met of 3 (one TPOT miss);
  // minute 1: none; minute 2: 1 met of 2 (a failure counts as missed).
  json rows = {Ok(0, 10, 5),
               Ok(3, 10, 5),
               Ok(5.9, 10, 500),
               Ok(12.5, 999, 100),
               {{"sent_s", 13.0}, {"failure", "cut"}}};
  const json m = AttainmentPerMinute(Load(Report(rows, 10)));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_NEAR(m[0].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_TRUE(m[1].is_null());
  EXPECT_DOUBLE_EQ(m[2].get<double>(), 0.5);
}

TEST(Violations, SustainedOnlyAndReactionToTheScaleUp) {
  // 0.5 s samples: a lone dip at 0.5 (no violation), a sustained one from 3 to 5.5; a refused
  // scale-up and a scale-down do not count; the ok 1 -> 3 event ends at 4.2: reaction 1.2 s.
  std::string text = kStartRow;
  const double att[] = {0.95, 0.5, 0.95, 0.95, 0.95, 0.95, 0.8, 0.7, 0.6, 0.7, 0.85, 0.92, 1};
  for (int i = 0; i < 13; ++i) text += Sample(i * 0.5, i < 9 ? 1 : 3, att[i]);
  text +=
      Event(3.1, 3.3, 1, 2, "refused") + Event(3.5, 4.2, 1, 3, "ok") + Event(2.0, 3.6, 2, 1, "ok");
  const ServerLog log = Log(text);
  const std::vector<Violation> v = Violations(log, 0.9, 100);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_DOUBLE_EQ(v[0].start_s, 3);
  EXPECT_DOUBLE_EQ(v[0].end_s, 5.5);
  ASSERT_TRUE(v[0].reaction_s.has_value());
  EXPECT_NEAR(*v[0].reaction_s, 1.2, 1e-6);  // unix seconds: ~0.2 us apart
}

TEST(Violations, UnansweredAndOpenAtTheEnd) {
  // A violation no scale-up answers (static policy), and one still open at the load's end; a
  // scale-up that began after the first violation ended does not answer it.
  std::string text = kStartRow;
  const double att[] = {0.5, 0.4, 1, 1, 0.3, 0.2, 0.1};
  for (int i = 0; i < 7; ++i) text += Sample(i, 1, att[i]);
  text += Event(2.5, 3.5, 1, 2, "ok");
  const std::vector<Violation> v = Violations(Log(text), 0.9, 6.5);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_DOUBLE_EQ(v[0].start_s, 0);  // from the load's start
  EXPECT_DOUBLE_EQ(v[0].end_s, 2);
  EXPECT_FALSE(v[0].reaction_s.has_value());
  EXPECT_DOUBLE_EQ(v[1].start_s, 4);
  EXPECT_DOUBLE_EQ(v[1].end_s, 6.5);
  EXPECT_FALSE(v[1].reaction_s.has_value());  // the only scale-up ended before it began
}

TEST(PolicySummary, DeviceSecondsEventsReactionSteady) {
  // 3 minutes of load at 20 requests per minute (30 s windows 1..4 steady: 2 minutes), one
  // event in window 2 and one before the load (not counted).
  json rows = json::array();
  for (int i = 0; i < 60; ++i) rows.push_back(Ok(i * 3.0 + 0.5, 10, i == 7 ? 200 : 5));
  std::string text = std::string(kStartRow) + Event(-5, -4, 1, 2, "ok");
  for (int i = 0; i < 8; ++i) text += Sample(60 + i * 0.25, 1, i < 4 ? 0.5 : 1);
  text += Event(60.5, 61.5, 1, 2, "ok", "manual");
  const json s = PolicySummary(Load(Report(rows, 1, 180)), Log(text));
  EXPECT_NEAR(s["slo_attainment"].get<double>(), 59.0 / 60, 1e-12);
  EXPECT_EQ(s["failed"], 0);
  EXPECT_EQ(s["device_seconds"], 150.5);
  EXPECT_NEAR(s["mean_devices"].get<double>(), 150.5 / 180, 1e-12);
  EXPECT_EQ(s["scale_events"]["count"], 1);
  EXPECT_EQ(s["scale_events"]["events"][0]["source"], "manual");
  EXPECT_EQ(s["reaction_s"]["violations"], 1);
  EXPECT_NEAR(s["reaction_s"]["mean"].get<double>(), 1.5, 1e-6);
  EXPECT_NEAR(s["reaction_s"]["max"].get<double>(), 1.5, 1e-6);
  EXPECT_EQ(s["ttft_ms"]["p90"], 20);
  EXPECT_TRUE(s["tpot_ms"].is_null());
  EXPECT_EQ(s["steady_minutes"], 2.0);  // windows 0..4 of the sends (the last is cut short)
  EXPECT_EQ(s["events_per_steady_minute"], 0.5);

  // A jump: 12 requests in each of windows 0 and 1, 30 in window 2, then 12 (cut short):
  // only window 1 is steady.
  json jump = json::array();
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < (w == 2 ? 30 : 12); ++i) jump.push_back(Ok(w * 30 + i * 0.9, 10, 5));
  }
  EXPECT_EQ(PolicySummary(Load(Report(jump, 1, 120)), Log(kStartRow))["steady_minutes"], 0.5);

  const json none = PolicySummary(Load(Report(json::array(), 1, 0)), Log(kStartRow));
  EXPECT_TRUE(none["slo_attainment"].is_null());
  EXPECT_TRUE(none["reaction_s"]["mean"].is_null());
  EXPECT_TRUE(none["events_per_steady_minute"].is_null());
}

TEST(MarkdownTable, RowsInOrderAgainstStaticPeak) {
  json rows = {Ok(1, 10, 5)};
  json summary = {{"policies",
                   {{"static-peak", PolicySummary(Load(Report(rows)), Log(kStartRow))},
                    {"slo", PolicySummary(Load(Report(rows)), Log(kStartRow))}}}};
  summary["policies"]["slo"]["device_seconds"] = 75.25;
  const std::string t = MarkdownTable(summary, {"static-peak", "slo", "absent"});
  EXPECT_LT(t.find("| static-peak | 100.0% | 150.5 | 100% |"), t.find("| slo |"));
  EXPECT_NE(t.find("| slo | 100.0% | 75.2 | 50% |"), std::string::npos) << t;
  EXPECT_EQ(t.find("absent"), std::string::npos);
}

TEST(TimelineData, TwoBlocks) {
  json rows = {Ok(0.5, 10, 5), Ok(1, 10, 500), Ok(7, 10, 5)};
  const std::string d =
      TimelineData(Load(Report(rows, 1, 10)), Log(Sample(1, 2, 0.5) + Sample(2, 3, nullptr)), 5);
  EXPECT_NE(d.find("2.50 0.400 0.5000\n7.50 0.200 1.0000\n\n\n"), std::string::npos) << d;
  EXPECT_NE(d.find("1.000 2 0.5000\n2.000 3 NaN\n"), std::string::npos) << d;
  const std::string g = GnuplotScript("out", {"a", "b"}, "out/autoscale.png");
  EXPECT_NE(g.find("multiplot layout 2,1"), std::string::npos);
  EXPECT_NE(g.find("'out/b/timeline.dat' index 1 using 1:2"), std::string::npos);
}

}  // namespace
}  // namespace emoe::bench
