#include "round_report.h"

#include "hetrain/common/log.h"

#include <string>

namespace hetrain::run {

nlohmann::json round_metrics(const RoundFacts &f, const Roster &trainers, const Plan &plan,
                             const RoundResult &result) {
  nlohmann::json per_trainer = nlohmann::json::array();
  double loss = 0;
  int64_t bytes = 0, uploads = 0;
  for (const TrainerState &t : trainers) {
    if (t.uploading) { // its (or with --host-reduce its host's) gradient sum
      bytes += f.shard_elements * f.wire_bytes;
      ++uploads;
    }
    if (!t.working)
      continue;
    loss += t.stats.loss_sum;
    bytes += f.buffer_elements * 4; // its buffers come here from every working trainer
    nlohmann::json tj{{"rank", t.world_rank},
                      {"host", t.report.host},
                      {"samples", static_cast<double>(t.stats.samples)},
                      {"compute_seconds", t.stats.compute_seconds},
                      {"data_wait_seconds", t.stats.data_wait_seconds},
                      {"wait_seconds", std::max(0.0, f.seconds - t.stats.compute_seconds)},
                      {"micro_batch", t.micro_batch}};
    // Rank 0's measure of its transfer: its last message's arrival minus its compute (this
    // round), and the smoothed figure the re-plans use.
    const auto j = static_cast<size_t>(&t - trainers.data());
    if (j < result.arrival_seconds.size() && result.arrival_seconds[j] >= 0)
      tj["transfer_seconds"] = std::max(0.0, result.arrival_seconds[j] - t.stats.compute_seconds);
    tj["smoothed_transfer_seconds"] = t.comm_seconds;
    if (t.gpu.valid)
      tj["gpu"] = {{"utilization", t.gpu.utilization},
                   {"memory_used_bytes", t.gpu.memory_used},
                   {"temperature_celsius", t.gpu.temperature},
                   {"power_watts", t.gpu.power}};
    per_trainer.push_back(tj);
  }
  nlohmann::json out = nlohmann::json::array(); // trainers out of the plan: no traffic this round
  for (const TrainerState &t : trainers)
    if (!t.lost && !t.in_round)
      out.push_back(t.world_rank);
  nlohmann::json shares = nlohmann::json::object();
  for (size_t p = 0; p < plan.ranks.size(); ++p)
    shares[std::to_string(trainer_at(trainers, plan.ranks[p]).world_rank)] = plan.micro_batches[p];
  const int64_t bytes_received = bytes;
  for (const TrainerState &t : trainers) {
    if (t.in_round)
      bytes += (f.shard_elements + f.buffer_elements) * 4; // parameters and buffers back to it
    if (t.refresh)
      bytes += (f.shard_elements + f.buffer_elements) * 4; // and before the round: it was out
  }
  nlohmann::json servers = nlohmann::json::array();
  for (size_t j = 0; j < result.server_acks.size(); ++j) {
    const ShardAck &a = result.server_acks[j];
    servers.push_back({{"rank", j + 1},
                       {"receive_seconds", a.receive_seconds},
                       {"reduce_seconds", a.reduce_seconds},
                       {"step_seconds", a.step_seconds},
                       {"uploads", uploads}, // every uploader sends every aggregator its piece
                       {"bytes_received", static_cast<double>(a.bytes_received)}});
  }
  return {{"type", "round"},
          {"round", f.round},
          {"step", f.step},
          {"epoch", f.epoch},
          {"time", f.time},
          {"seconds", f.seconds},
          {"samples", f.samples},
          {"samples_per_sec", static_cast<double>(f.samples) / f.seconds},
          {"loss", loss / static_cast<double>(f.samples)},
          {"lr", f.lr},
          {"shares", shares},
          {"out", out},
          {"trainers", per_trainer},
          {"aggregator",
           {{"receive_seconds", result.receive_seconds},
            {"reduce_seconds", result.reduce_seconds},
            {"step_seconds", result.step_seconds},
            {"broadcast_seconds", result.broadcast_seconds},
            {"uploads", uploads},
            {"bytes_received", bytes_received}}},
          {"shard_servers", servers},
          {"bytes", bytes}};
}

std::vector<PrometheusTrainer> prometheus_trainers(const Roster &trainers, const Plan &plan) {
  std::vector<PrometheusTrainer> out;
  for (const TrainerState &t : trainers)
    if (!t.lost)
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
             t.lost ? "  lost" : "");
}

} // namespace hetrain::run
