#include "hetrain/cluster/device_placement.h"

#include <fmt/format.h>

namespace hetrain {

std::vector<DevicePlace> place_devices(const std::vector<HostRank> &host, int gpus) {
  std::vector<DevicePlace> out(host.size());
  // Trainers first: their steps are the job's critical path.
  int trainers = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    const HostRank &r = host[i];
    if (r.role != RankRole::kTrainer)
      continue;
    if (r.wish == DeviceWish::kCpu || gpus <= 0) {
      out[i].reason = r.wish == DeviceWish::kCpu ? "--device cpu" : "no GPU visible on this host";
      continue;
    }
    out[i].gpu = trainers % gpus;
    out[i].reason = fmt::format("trainer {} of this host on GPU {} of {}{}", trainers, out[i].gpu,
                                gpus, trainers >= gpus ? ", shared with another trainer" : "");
    ++trainers;
  }
  const int used = trainers < gpus ? trainers : gpus;
  int next_spare = used;
  for (size_t i = 0; i < host.size(); ++i) {
    const HostRank &r = host[i];
    if (r.role != RankRole::kAggregator)
      continue;
    if (r.wish == DeviceWish::kCpu || gpus <= 0) {
      out[i].reason =
          r.wish == DeviceWish::kCpu ? "the CPU, as asked" : "no GPU visible on this host";
      continue;
    }
    if (next_spare < gpus) {
      out[i].gpu = next_spare++;
      out[i].reason = fmt::format("GPU {} of {}, its own ({} used by this host's {} trainer(s))",
                                  out[i].gpu, gpus, used, trainers);
    } else if (r.wish == DeviceWish::kCuda) {
      out[i].gpu = 0;
      out[i].reason = fmt::format("--aggregator-device cuda: GPU 0, shared with a trainer (no "
                                  "spare among {} GPU(s) for {} trainer(s))",
                                  gpus, trainers);
    } else {
      out[i].reason = fmt::format("the CPU: no spare GPU ({} GPU(s), {} trainer(s) on this host); "
                                  "--aggregator-device cuda would share one",
                                  gpus, trainers);
    }
  }
  return out;
}

} // namespace hetrain
