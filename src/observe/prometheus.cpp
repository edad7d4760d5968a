#include "hetrain/observe/prometheus.h"

#include "hetrain/common/atomic_file.h"

#include <fmt/format.h>

namespace hetrain {
namespace {

std::string escape_label(const std::string &value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Exposition {
public:
  void family(const char *name, const char *type, const char *help) {
    text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    name_ = name;
  }
  void sample(double value, const std::string &labels = "") {
    text_ += fmt::format("{}{} {}\n", name_, labels.empty() ? "" : "{" + labels + "}", value);
  }
  std::string text() const { return text_; }

private:
  std::string text_;
  std::string name_;
};

std::string trainer_labels(const PrometheusTrainer &t) {
  return fmt::format("rank=\"{}\",host=\"{}\"", t.rank, escape_label(t.host));
}

} // namespace

std::string prometheus_text(const PrometheusSnapshot &s) {
  Exposition e;
  e.family("hetrain_samples_per_second", "gauge", "Training throughput of the whole job.");
  e.sample(s.samples_per_second);
  e.family("hetrain_samples_total", "counter", "Training samples processed by the job.");
  e.sample(static_cast<double>(s.samples_total));
  e.family("hetrain_rounds_total", "counter", "Rounds (synchronisations) completed.");
  e.sample(static_cast<double>(s.rounds_total));
  e.family("hetrain_epoch", "gauge", "Epoch in progress (1-based).");
  e.sample(static_cast<double>(s.epoch));
  e.family("hetrain_loss", "gauge", "Mean training loss of the epoch so far.");
  e.sample(s.loss);
  if (s.test_accuracy >= 0) {
    e.family("hetrain_test_accuracy_ratio", "gauge", "Test accuracy after the last epoch.");
    e.sample(s.test_accuracy);
  }
  e.family("hetrain_trainer_share_micro_batches", "gauge",
           "Micro-batches of a round given to the trainer by the current plan.");
  for (const auto &t : s.trainers)
    e.sample(static_cast<double>(t.micro_batches), trainer_labels(t));
  e.family("hetrain_trainer_samples_per_second", "gauge", "The trainer's measured speed.");
  for (const auto &t : s.trainers)
    e.sample(t.samples_per_second, trainer_labels(t));
  e.family("hetrain_trainer_samples_total", "counter", "Samples the trainer has processed.");
  for (const auto &t : s.trainers)
    e.sample(static_cast<double>(t.samples_total), trainer_labels(t));
  bool any_gpu = false;
  for (const auto &t : s.trainers)
    any_gpu = any_gpu || t.gpu.valid;
  if (any_gpu) {
    struct Field {
      const char *name, *help;
      double GpuSample::*value;
    };
    for (const Field &f :
         {Field{"hetrain_gpu_utilization_ratio", "GPU busy fraction (NVML).",
                &GpuSample::utilization},
          Field{"hetrain_gpu_memory_used_bytes", "GPU memory in use (NVML).",
                &GpuSample::memory_used},
          Field{"hetrain_gpu_temperature_celsius", "GPU temperature (NVML).",
                &GpuSample::temperature},
          Field{"hetrain_gpu_power_watts", "GPU power draw (NVML).", &GpuSample::power}}) {
      e.family(f.name, "gauge", f.help);
      for (const auto &t : s.trainers)
        if (t.gpu.valid)
          e.sample(t.gpu.*(f.value), trainer_labels(t));
    }
  }
  return e.text();
}

void write_prometheus_file(const std::string &path, const PrometheusSnapshot &snapshot) {
  write_text_file_atomically(path, prometheus_text(snapshot));
}

} // namespace hetrain
