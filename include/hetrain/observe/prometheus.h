// --prometheus FILE.prom: a node_exporter textfile-collector file with the job's current state,
// rewritten atomically (temporary + rename, as the collector requires) every progress interval
// and at every epoch end. Names follow Prometheus conventions: prefix hetrain_, base units
// (seconds, bytes, ratios, watts, celsius), _total for counters.
#pragma once

#include "hetrain/observe/gpu_monitor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

struct PrometheusTrainer {
  int rank = 0;
  std::string host;
  int64_t micro_batches = 0; // share in the current plan
  double samples_per_second = 0;
  int64_t samples_total = 0;
  GpuSample gpu; // its GPU, when it has one and NVML answered
};

struct PrometheusSnapshot {
  double samples_per_second = 0;
  int64_t samples_total = 0;
  int64_t rounds_total = 0;
  int64_t epoch = 0; // 1-based epoch in progress
  double loss = 0;
  double test_accuracy = -1; // -1: no evaluation yet
  std::vector<PrometheusTrainer> trainers;
};

// The exposition text (HELP and TYPE lines, one sample per line, label values escaped).
std::string prometheus_text(const PrometheusSnapshot &snapshot);
void write_prometheus_file(const std::string &path, const PrometheusSnapshot &snapshot);

} // namespace hetrain
