#include "hetrain/cluster/admission.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain {

std::vector<AdmissionVerdict> decide_admission(const std::vector<TrainerReport> &reports,
                                               const AdmissionPolicy &policy) {
  double fastest = 0;
  for (const TrainerReport &r : reports)
    fastest = std::max(fastest, r.probe_samples_per_sec);
  std::vector<AdmissionVerdict> verdicts;
  for (const TrainerReport &r : reports) {
    AdmissionVerdict v{r.rank, false, ""};
    const double relative = fastest > 0 ? r.probe_samples_per_sec / fastest : 0;
    if (r.probe_samples_per_sec <= 0)
      v.reason = "its training probe did not run";
    else if (policy.require_gpu && r.gpu_count == 0)
      v.reason = "no GPU and --require-gpu is set";
    else if (policy.require_bf16 && !r.bf16)
      v.reason = fmt::format("{} has no bf16 arithmetic and --require-bf16 is set", r.device);
    else if (r.device_memory_free > 0 && r.probe_peak_bytes > r.device_memory_free)
      v.reason = fmt::format("needs {:.0f} MiB for the model and one micro-batch, has {:.0f} MiB "
                             "free",
                             r.probe_peak_bytes / (1 << 20),
                             static_cast<double>(r.device_memory_free) / (1 << 20));
    else if (relative < policy.min_relative_speed)
      v.reason = fmt::format("{:.0f} samples/s is {:.2f} of the fastest trainer, below "
                             "--min-relative-speed {}",
                             r.probe_samples_per_sec, relative, policy.min_relative_speed);
    else
      v.admitted = true;
    verdicts.push_back(v);
  }
  return verdicts;
}

} // namespace hetrain
