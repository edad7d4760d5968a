#include "round_report.h"

#include "hetrain/common/log.h"

#include <string>

namespace hetrain::run {

RoundRecord round_record(const RoundFacts &f, const Roster &trainers, const Plan &plan,
                         const RoundResult &result) {
  RoundRecord r;
  r.round = f.round;
  r.step = f.step;
  r.epoch = f.epoch;
  r.time = f.time;
  r.seconds = f.seconds;
  r.samples = f.samples;
  r.lr = f.lr;
  double loss = 0;
  int64_t bytes = 0, uploads = 0;
  for (size_t j = 0; j < trainers.size(); ++j) {
    const TrainerState &t = trainers[j];
    if (t.uploading) { // its (or with --host-reduce its host's) gradient sum
      bytes += f.shard_upload_bytes;
      ++uploads;
    }
    if (!gone(t) && !t.in_round)
      r.out.push_back(t.world_rank); // out of the plan: no traffic this round
    if (!t.working)
      continue;
    loss += t.stats.loss_sum;
    bytes += f.buffer_elements * 4; // its buffers come here from every working trainer
    TrainerRoundRecord tr;
    tr.rank = t.world_rank;
    tr.host = t.report.host;
    tr.samples = t.stats.samples;
    tr.compute_seconds = t.stats.compute_seconds;
    tr.data_wait_seconds = t.stats.data_wait_seconds;
    if (t.stats.wire_relative_error >= 0)
      tr.wire_relative_error = t.stats.wire_relative_error;
    tr.wait_seconds = std::max(0.0, f.seconds - t.stats.compute_seconds);
    tr.micro_batch = t.micro_batch;
    if (j < result.arrival_seconds.size() && result.arrival_seconds[j] >= 0)
      tr.transfer_seconds = std::max(0.0, result.arrival_seconds[j] - t.stats.compute_seconds);
    tr.smoothed_transfer_seconds = t.comm_seconds;
    if (t.gpu.valid)
      tr.gpu = t.gpu;
    r.trainers.push_back(std::move(tr));
  }
  r.loss = loss / static_cast<double>(f.samples);
  for (size_t p = 0; p < plan.ranks.size(); ++p)
    r.shares[trainer_at(trainers, plan.ranks[p]).world_rank] = plan.micro_batches[p];
  r.aggregator.receive_seconds = result.receive_seconds;
  r.aggregator.reduce_seconds = result.reduce_seconds;
  r.aggregator.step_seconds = result.step_seconds;
  r.aggregator.broadcast_seconds = result.broadcast_seconds;
  r.aggregator.uploads = uploads;
  r.aggregator.bytes_received = bytes;
  for (const TrainerState &t : trainers) {
    if (t.in_round)
      bytes += (f.shard_elements + f.buffer_elements) * 4; // parameters and buffers back to it
    if (t.refresh)
      bytes += (f.shard_elements + f.buffer_elements) * 4; // and before the round: it was out
  }
  r.bytes = bytes;
  for (size_t j = 0; j < result.server_acks.size(); ++j) {
    const ShardAck &a = result.server_acks[j];
    AggregatorRoundRecord &server = r.shard_servers.emplace_back();
    server.rank = static_cast<int>(j + 1);
    server.receive_seconds = a.receive_seconds;
    server.reduce_seconds = a.reduce_seconds;
    server.step_seconds = a.step_seconds;
    server.uploads = uploads; // every uploader sends every aggregator its piece
    server.bytes_received = a.bytes_received;
  }
  return r;
}

std::vector<PrometheusTrainer> prometheus_trainers(const Roster &trainers, const Plan &plan) {
  std::vector<PrometheusTrainer> out;
  for (const TrainerState &t : trainers)
    if (!gone(t))
      out.push_back(
          {t.world_rank, t.report.host, share_in(plan, t.job_rank), t.speed, t.samples, t.gpu});
  return out;
}

void log_trainer_table(const Roster &trainers, const Plan &plan) {
  log_info("  {:>4}  {:<16} {:>6} {:>10} {:>10} {:>9} {:>10} {:>12}", "rank", "host", "share",
           "samples", "compute s", "wait s", "samples/s", "out rounds/s");
  for (const TrainerState &t : trainers)
    log_info("  {:>4}  {:<16} {:>6} {:>10} {:>10.1f} {:>9.1f} {:>10.0f} {:>12}{}", t.world_rank,
             t.report.host, share_in(plan, t.job_rank), t.samples, t.compute_seconds,
             t.wait_seconds, t.speed, fmt::format("{}/{:.1f}", t.out_rounds, t.out_seconds),
             t.lost   ? "  lost"
             : t.left ? "  left"
                      : "");
}

} // namespace hetrain::run
