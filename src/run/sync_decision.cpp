#include "sync_decision.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/log.h"
#include "hetrain/model/models.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/train/flat_parameters.h"

#include "model_buffers.h"
#include "protocol.h"
#include "round_planner.h"
#include "train_setup.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <array>
#include <cstdint>

namespace hetrain::run {

namespace {

// The exact round of the start-up plan, as the planner estimates it from the probe's speeds and
// link rates (the same figures the plan itself is made from).
RoundEstimate exact_round(const TrainConfig &exact, const AdmittedJob &admitted,
                          const HostMap &hosts, const DatasetMeta &meta) {
  torch::NoGradGuard no_grad;
  const std::shared_ptr<Model> model = make_model(spec_of(exact, meta));
  const FlatParameters flat(*model);
  Roster trainers = admitted.trainers; // the planner's own copy; their links are attached
  const PlanSizes sizes{flat.numel(), buffer_elements(*model),
                        protocol::shard_layout_checked(flat.numel(), exact)};
  const RoundPlanner planner(exact, trainers, sizes, job_host_groups(exact, hosts).groups);
  return planner.estimate_current(/*links_only=*/true);
}

} // namespace

SyncDecision decide_sync(const TrainConfig &config, const AdmittedJob &admitted,
                         const HostMap &hosts, const DatasetMeta &meta) {
  SyncDecision decision{config, ""};
  if (config.sync != SyncMode::kAuto)
    return decision;
  TrainConfig &c = decision.config;
  c.sync = SyncMode::kGradient;
  const RoundEstimate round = exact_round(c, admitted, hosts, meta);
  const TrainConfig defaults;
  const int64_t given = c.local_steps != defaults.local_steps ? c.local_steps : 0;
  const SyncChoice choice = choose_sync(round, config.auto_comm_fraction, given);
  const double ratio =
      choice.compute_seconds > 0 ? choice.comm_seconds / choice.compute_seconds : 0;
  const std::string figures = fmt::format(
      "the exact round moves {:.3g} s on the links against {:.3g} s of compute ({:.2g}x; at "
      "most {:g} wanted, --auto-comm-fraction){}",
      choice.comm_seconds, choice.compute_seconds, ratio, config.auto_comm_fraction,
      admitted.links.empty() ? "; links not probed: assumed 1 GB/s" : "");
  if (choice.exact) {
    decision.why = "gradient: " + figures;
  } else {
    c.sync = SyncMode::kDiLoCo;
    // --sync-seconds, when given, picks the period later from the speeds (with_sync_period).
    c.local_steps = c.sync_seconds > 0 ? defaults.local_steps : choice.local_steps;
    decision.why =
        fmt::format("diloco{}: {}",
                    c.sync_seconds > 0 ? " (period from --sync-seconds)"
                    : given > 0 ? fmt::format(", {} local steps (--local-steps)", c.local_steps)
                                : fmt::format(", a sync every {} local steps", c.local_steps),
                    figures);
  }
  log_info("sync auto: {}", decision.why);
  return decision;
}

TrainConfig share_sync_decision(const TrainConfig &config, MPI_Comm job) {
  std::array<int64_t, 2> words{static_cast<int64_t>(config.sync), config.local_steps};
  MPI_Request request;
  CHECK_MPI(MPI_Ibcast(words.data(), 2, MPI_INT64_T, 0, job, &request));
  RequestSet set;
  set.add(request, 0, "the sync mode rank 0 decided after the link probe");
  set.wait_all(config.join_timeout + 60);
  TrainConfig decided = config;
  if (words[0] < 0 || words[0] > static_cast<int64_t>(SyncMode::kDiLoCo) || words[1] < 1)
    throw ProtocolError(fmt::format("rank 0 decided an unknown sync mode ({}, {} local steps)",
                                    words[0], words[1]));
  decided.sync = static_cast<SyncMode>(words[0]);
  decided.local_steps = words[1];
  return decided;
}

} // namespace hetrain::run
