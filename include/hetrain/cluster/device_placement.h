// Which device each rank of a host uses: a pure decision from the host's ranks, their roles and
// the visible GPUs, unit-tested apart from CUDA and MPI (DESIGN §1 "Devices placed on purpose").
//
// Rules, in order:
//   - A trainer with --device cpu, or any rank on a host without GPUs, uses the CPU.
//   - Trainers come first: the k-th trainer of the host (in local-rank order) takes GPU k % G.
//     Each has its own GPU while there are at least as many GPUs as trainers.
//   - An aggregator that may use CUDA (--aggregator-device auto or cuda; shard servers reduce on
//     the CPU) takes a GPU no trainer uses when one is left over (the first spare one).
//   - With none to spare, auto puts the aggregator on the CPU: sharing a GPU with a trainer slows
//     that trainer's every step, while the aggregator's reduce is memory-bound and short. An
//     explicit --aggregator-device cuda is obeyed: the aggregator shares GPU 0, and says so.
// Every decision comes with a reason string that the rank logs.
#pragma once

#include "hetrain/cluster/thread_share.h"

#include <string>
#include <vector>

namespace hetrain {

// What a rank wants: the CPU only, a GPU when one fits (auto), or a GPU in any case (cuda).
enum class DeviceWish { kCpu, kAuto, kCuda };

struct HostRank {
  RankRole role = RankRole::kTrainer;
  DeviceWish wish = DeviceWish::kAuto;
};

struct DevicePlace {
  int gpu = -1; // -1: the CPU
  std::string reason;
};

// `host`: every rank of one host, in local-rank order; `gpus`: the GPUs visible there (0 or
// more). Returns one place per entry of `host`.
std::vector<DevicePlace> place_devices(const std::vector<HostRank> &host, int gpus);

} // namespace hetrain
