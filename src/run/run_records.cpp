#include "run_records.h"

#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"
#include "hetrain/train/compute.h"

#include "link_probe.h"

#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>

namespace hetrain::run {
namespace fs = std::filesystem;

void prepare_outputs(const TrainConfig &config) {
  const std::pair<const char *, const std::string *> files[] = {
      {"--summary-json", &config.summary_json},
      {"--metrics", &config.metrics},
      {"--timeline", &config.timeline},
      {"--prometheus", &config.prometheus},
      {"--accept-joins", &config.accept_joins}};
  for (const auto &[flag, path] : files) {
    if (path->empty())
      continue;
    try {
      AtomicOutputFile probe(*path); // checks the folder; creates nothing
    } catch (const UserError &e) {
      throw UserError(fmt::format("{}: {}", flag, e.what()));
    }
  }
  const std::string &dir = config.checkpoint_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw UserError(fmt::format("--checkpoint-dir {}: cannot create directory ({})", dir,
                                ec ? ec.message() : "exists as a file"));
  if (access(dir.c_str(), W_OK) != 0)
    throw UserError(
        fmt::format("--checkpoint-dir {}: not writable ({})", dir, std::strerror(errno)));
}

void finish_epoch(const EpochTotals &totals, Model &model, const LossSpec &loss,
                  const Dataset *test, int64_t epochs, TrainSummary &summary) {
  EpochRecord record;
  record.epoch = totals.epoch + 1;
  record.samples = totals.samples;
  record.train_loss = totals.loss_sum / static_cast<double>(totals.samples);
  // Accuracy means something for class labels only; NaN (null in JSON) otherwise.
  const double no_accuracy = std::numeric_limits<double>::quiet_NaN();
  record.train_accuracy = totals.class_labels ? static_cast<double>(totals.correct) /
                                                    static_cast<double>(totals.samples)
                                              : no_accuracy;
  record.seconds = totals.seconds;
  record.samples_per_sec = static_cast<double>(totals.samples) / totals.seconds;
  if (test != nullptr) {
    EvalResult eval = evaluate(model, loss, *test);
    record.test_loss = eval.loss;
    record.test_accuracy = totals.class_labels ? eval.accuracy : no_accuracy;
  }
  summary.history.push_back(record);
  summary.epoch_seconds.push_back(record.seconds);
  const bool acc = totals.class_labels;
  log_info("epoch {}/{} done in {:.1f} s ({:.0f} samples/s) | train loss {:.4f}{}{}", record.epoch,
           epochs, record.seconds, record.samples_per_sec, record.train_loss,
           acc ? fmt::format(" acc {:.4f}", record.train_accuracy) : std::string(),
           test ? fmt::format(" | test loss {:.4f}{}", record.test_loss,
                              acc ? fmt::format(" accuracy {:.4f}", record.test_accuracy) : "")
                : std::string());
}

nlohmann::json epoch_metrics(const EpochRecord &r) {
  nlohmann::json j = r;
  j["type"] = "epoch";
  if (r.test_loss < 0) { // no test set: the metrics record leaves the test figures out
    j.erase("test_loss");
    j.erase("test_accuracy");
  }
  return j;
}

namespace {
nlohmann::json to_json(const TrainerRoundRecord &t) {
  nlohmann::json j{{"rank", t.rank},
                   {"host", t.host},
                   {"samples", t.samples},
                   {"compute_seconds", t.compute_seconds},
                   {"data_wait_seconds", t.data_wait_seconds},
                   {"wait_seconds", t.wait_seconds},
                   {"micro_batch", t.micro_batch}};
  if (t.transfer_seconds)
    j["transfer_seconds"] = *t.transfer_seconds;
  if (t.smoothed_transfer_seconds)
    j["smoothed_transfer_seconds"] = *t.smoothed_transfer_seconds;
  if (t.wire_relative_error)
    j["wire_relative_error"] = *t.wire_relative_error;
  if (t.gpu && t.gpu->valid)
    j["gpu"] = {{"utilization", t.gpu->utilization},
                {"memory_used_bytes", t.gpu->memory_used},
                {"temperature_celsius", t.gpu->temperature},
                {"power_watts", t.gpu->power}};
  return j;
}

nlohmann::json to_json(const AggregatorRoundRecord &a) {
  nlohmann::json j{{"receive_seconds", a.receive_seconds},
                   {"reduce_seconds", a.reduce_seconds},
                   {"step_seconds", a.step_seconds}};
  if (a.rank)
    j["rank"] = *a.rank;
  if (a.broadcast_seconds)
    j["broadcast_seconds"] = *a.broadcast_seconds;
  if (a.uploads)
    j["uploads"] = *a.uploads;
  if (a.bytes_received)
    j["bytes_received"] = *a.bytes_received;
  return j;
}
} // namespace

void to_json(nlohmann::json &j, const RoundRecord &r) {
  nlohmann::json shares = nlohmann::json::object();
  for (const auto &[rank, share] : r.shares)
    shares[std::to_string(rank)] = share;
  nlohmann::json trainers = nlohmann::json::array(), servers = nlohmann::json::array();
  for (const TrainerRoundRecord &t : r.trainers)
    trainers.push_back(to_json(t));
  for (const AggregatorRoundRecord &a : r.shard_servers)
    servers.push_back(to_json(a));
  j = {{"type", "round"},          {"round", r.round},
       {"step", r.step},           {"epoch", r.epoch},
       {"time", r.time},           {"seconds", r.seconds},
       {"samples", r.samples},     {"samples_per_sec", static_cast<double>(r.samples) / r.seconds},
       {"loss", r.loss},           {"lr", r.lr},
       {"shares", shares},         {"out", r.out},
       {"trainers", trainers},     {"aggregator", to_json(r.aggregator)},
       {"shard_servers", servers}, {"bytes", r.bytes}};
}

void finish_run(const TrainConfig &config, const TrainingPosition &position,
                TrainSummary &summary) {
  summary.steps = position.global_step;
  summary.samples = position.samples_seen;
  const double train_seconds =
      std::accumulate(summary.epoch_seconds.begin(), summary.epoch_seconds.end(), 0.0);
  summary.samples_per_sec = static_cast<double>(position.samples_seen) / train_seconds;
  summary.final_train_loss = summary.history.back().train_loss;
  summary.test_accuracy = summary.history.back().test_accuracy;
  summary.test_loss = summary.history.back().test_loss;
  log_info("finished: {} steps, {:.0f} samples/s, final checkpoint {}", summary.steps,
           summary.samples_per_sec, summary.final_checkpoint);
  if (!config.summary_json.empty())
    write_text_file_atomically(config.summary_json, summary_to_json(summary) + "\n");
}

} // namespace hetrain::run

namespace hetrain {

std::string summary_to_json(const TrainSummary &s) {
  nlohmann::json j{{"world_size", s.world_size},
                   {"model", s.model},
                   {"parameters", s.parameters},
                   {"aggregator_device", s.aggregator_device},
                   {"amp", s.amp},
                   {"aggregators", s.aggregators},
                   {"epochs", s.epochs},
                   {"steps", s.steps},
                   {"resumed_step", s.resumed_step},
                   {"samples", s.samples},
                   {"samples_per_sec", s.samples_per_sec},
                   {"epoch_seconds", s.epoch_seconds},
                   {"test_accuracy", s.test_accuracy},
                   {"test_loss", s.test_loss},
                   {"final_train_loss", s.final_train_loss},
                   {"compute_seconds", s.compute_seconds},
                   {"data_wait_seconds", s.data_wait_seconds},
                   {"final_checkpoint", s.final_checkpoint},
                   {"history", s.history}};
  if (!s.trainers.empty()) {
    nlohmann::json trainers = nlohmann::json::array();
    for (const TrainerSummary &t : s.trainers)
      trainers.push_back({{"rank", t.rank},
                          {"host", t.host},
                          {"share", t.micro_batches},
                          {"samples", t.samples},
                          {"compute_seconds", t.compute_seconds},
                          {"data_wait_seconds", t.data_wait_seconds},
                          {"wait_seconds", t.wait_seconds},
                          {"micro_batch", t.micro_batch},
                          {"lost", t.lost},
                          {"left", t.left},
                          {"out_rounds", t.out_rounds},
                          {"out_seconds", t.out_seconds},
                          {"samples_per_sec", t.samples_per_sec},
                          {"overlapped_rounds", t.overlapped_rounds}});
    j["trainers"] = trainers;
    j["plan_history"] = s.plan_history;
    j["plan_notes"] = s.plan_notes;
    j["host_groups"] = s.host_groups;
    j["uploads_per_round"] = s.uploads_per_round;
    j["lost_trainers"] = s.lost_trainers;
    j["sync"] = s.sync;
    j["local_steps"] = s.local_steps;
    j["sync_choice"] = s.sync_choice;
    j["sync_overlap"] = s.sync_overlap;
    nlohmann::json changes = nlohmann::json::array();
    for (const MembershipChange &c : s.membership_changes)
      changes.push_back({{"rank", c.rank},
                         {"host", c.host},
                         {"change", c.change},
                         {"reason", c.reason},
                         {"round", c.round},
                         {"time", c.time},
                         {"cost", c.cost}});
    j["membership_changes"] = changes;
    j["links"] = run::links_json(s.links);
    j["link_probe_seconds"] = s.link_probe_seconds;
    j["link_probe_wait_seconds"] = s.link_probe_wait_seconds;
    nlohmann::json admission = nlohmann::json::array(), moves = nlohmann::json::array();
    for (const AdmissionRecord &a : s.admission)
      admission.push_back({{"rank", a.rank},
                           {"host", a.host},
                           {"device", a.device},
                           {"probe_samples_per_sec", a.probe_samples_per_sec},
                           {"admitted", a.admitted},
                           {"reason", a.reason}});
    for (const PlanMove &m : s.plan_moves)
      moves.push_back({{"rank", m.rank}, {"round", m.round}, {"in_plan", m.in_plan}});
    j["admission"] = admission;
    j["plan_moves"] = moves;
  }
  return j.dump(2);
}

} // namespace hetrain
