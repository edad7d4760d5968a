// The observability stage on its own: timeline encoding and trace JSON, the Prometheus text, and
// NVML's absence on a machine without the driver.
#include "hetrain/observe/gpu_monitor.h"
#include "hetrain/observe/prometheus.h"
#include "hetrain/observe/timeline.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <stdexcept>

using namespace hetrain;

TEST(Timeline, SpansTravelEncodedAndBecomeOneRowPerRank) {
  Timeline trainer(true);
  trainer.set_rank(1);
  trainer.add(Span::kCompute, 1000, 1500, 3);
  trainer.add(Span::kSend, 1500, 1600, 3);
  Timeline all(true);
  all.add(Span::kReceive, 900, 1700, 3);
  all.add_encoded(1, trainer.encode());
  ASSERT_EQ(all.size(), 3u);
  auto trace = nlohmann::json::parse(all.to_json({"rank 0 (a) aggregator", "rank 1 (b) trainer"}));
  int names = 0, spans_of_1 = 0;
  for (const auto &e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "process_name")
      ++names;
    if (e["ph"] == "X" && e["pid"] == 1) {
      ++spans_of_1;
      EXPECT_EQ(e["args"]["round"], 3);
    }
    if (e["ph"] == "X" && e["name"] == "compute") {
      EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 100.0); // relative to the first span (900)
      EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 500.0);
    }
  }
  EXPECT_EQ(names, 2);
  EXPECT_EQ(spans_of_1, 2);
  EXPECT_THROW(all.add_encoded(1, {1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(all.add_encoded(1, {42, 0, 1, -1}), std::invalid_argument);
}

TEST(Timeline, DisabledRecordsNothing) {
  Timeline off;
  { ScopedSpan span(off, Span::kStep); }
  off.add(Span::kCompute, 0, 1);
  EXPECT_EQ(off.size(), 0u);
  Timeline on(true);
  { ScopedSpan span(on, Span::kStep); }
  EXPECT_EQ(on.size(), 1u);
}

TEST(Prometheus, ExpositionHasHelpTypeAndEscapedLabels) {
  PrometheusSnapshot s;
  s.samples_per_second = 1234.5;
  s.samples_total = 6000;
  s.rounds_total = 24;
  s.epoch = 2;
  s.loss = 0.5;
  s.test_accuracy = 0.85;
  PrometheusTrainer t{1, "node\"7\\x", 5, 800, 4000, {}};
  t.gpu = {true, 0.9, 2e9, 65, 250};
  s.trainers.push_back(t);
  const std::string text = prometheus_text(s);
  EXPECT_NE(text.find("# TYPE hetrain_samples_total counter\nhetrain_samples_total 6000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hetrain_trainer_share_micro_batches{rank=\"1\",host=\"node\\\"7\\\\x\"} 5"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hetrain_gpu_power_watts{rank=\"1\""), std::string::npos) << text;
  EXPECT_NE(text.find("hetrain_test_accuracy_ratio 0.85"), std::string::npos) << text;
  // Without GPUs and before any evaluation those families are left out, not written as zeros.
  s.trainers[0].gpu = {};
  s.test_accuracy = -1;
  const std::string bare = prometheus_text(s);
  EXPECT_EQ(bare.find("hetrain_gpu_"), std::string::npos) << bare;
  EXPECT_EQ(bare.find("hetrain_test_accuracy_ratio"), std::string::npos) << bare;
}

TEST(GpuMonitor, WithoutTheDriverItSaysSoInsteadOfFailing) {
  std::string why;
  GpuSample s = sample_gpu(0, &why);
  if (s.valid) {
    // A machine with the NVIDIA driver: the figures are in their units' ranges.
    EXPECT_GE(s.utilization, 0.0);
    EXPECT_LE(s.utilization, 1.0);
    EXPECT_GT(s.memory_used, 0.0);
  } else {
    EXPECT_FALSE(why.empty());
  }
  EXPECT_FALSE(sample_gpu(-1, &why).valid);
}
