#include "hetrain/config/config.h"

#include "hetrain/data/augment.h"
#include "hetrain/data/dataset_file.h"

#include "hetrain/config/options.h"

#include "hetrain/common/error.h"
#include "hetrain/schedule/plan.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace hetrain {
namespace {

void require(bool ok, const std::string &message) {
  if (!ok)
    throw UserError(message);
}

void require_one_of(const std::string &flag, const std::string &value,
                    const std::vector<std::string> &allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end())
    return;
  std::string list;
  for (const auto &a : allowed)
    list += (list.empty() ? "" : ", ") + a;
  throw UserError(fmt::format("--{}: '{}' is not one of {}", flag, value, list));
}

} // namespace

std::string data_source(const TrainConfig &c) {
  return c.synthetic.empty() ? c.data : "synthetic:" + c.synthetic;
}

void validate(const TrainConfig &c) {
  require(!c.data.empty() || !c.synthetic.empty(),
          "--data: a training dataset is required (or --synthetic CxHxW:CLASSES:N)");
  require(c.data.empty() || c.synthetic.empty(), "--data and --synthetic: give one of them");
  if (!c.synthetic.empty())
    parse_synthetic(data_source(c)); // throws with the reason
  parse_augment(c.augment);          // throws naming the bad item
  // The string options with a fixed list of values (the enums cannot hold another value).
  visit_train_options([&](const OptionInfo &option, auto member) {
    if constexpr (std::is_same_v<std::decay_t<decltype(c.*member)>, std::string>)
      if (!option.choices.empty())
        require_one_of(option.name, c.*member, option.choices);
  });
  require(c.label_smoothing >= 0 && c.label_smoothing < 1,
          fmt::format("--label-smoothing: must be in [0, 1), got {}", c.label_smoothing));
  require(c.label_smoothing == 0 || c.loss == LossKind::kCrossEntropy,
          "--label-smoothing: only with --loss cross-entropy");
  require(!c.model.empty(), "--model: must not be empty");
  require(c.epochs > 0, fmt::format("--epochs: must be positive, got {}", c.epochs));
  require(c.global_batch > 0,
          fmt::format("--global-batch: must be positive, got {}", c.global_batch));
  require(c.micro_batch > 0, fmt::format("--micro-batch: must be positive, got {}", c.micro_batch));
  require(c.global_batch % c.micro_batch == 0,
          fmt::format("--global-batch {} is not divisible by --micro-batch {}", c.global_batch,
                      c.micro_batch));
  require(std::isfinite(c.lr) && c.lr > 0, fmt::format("--lr: must be positive, got {}", c.lr));
  require(std::isfinite(c.momentum) && c.momentum >= 0 && c.momentum < 1,
          fmt::format("--momentum: must be in [0, 1), got {}", c.momentum));
  require(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1,
          "--beta1/--beta2: must be in [0, 1)");
  require(c.eps > 0, fmt::format("--eps: must be positive, got {}", c.eps));
  require(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
          fmt::format("--weight-decay: must be >= 0, got {}", c.weight_decay));
  require(c.warmup_steps >= 0, "--warmup-steps: must be >= 0");
  require(c.lr_step_size >= 0, "--lr-step-size: must be >= 0");
  require(c.lr_gamma > 0 && c.lr_gamma <= 1, "--lr-gamma: must be in (0, 1]");
  require(c.threads >= 0, "--threads: must be >= 0 (0 = all usable cores)");
  require(c.limit_train_samples >= 0, "--limit-train-samples: must be >= 0");
  require(c.checkpoint_every >= 0, "--checkpoint-every: must be >= 0");
  require(c.keep_checkpoints >= 1, "--keep-checkpoints: must be at least 1");
  require(!c.checkpoint_dir.empty(), "--checkpoint-dir: must not be empty");
  require(c.progress_seconds > 0, "--progress-seconds: must be positive");
  parse_balance(c.balance); // throws with the reason
  require(c.local_steps >= 1,
          fmt::format("--local-steps: must be at least 1, got {}", c.local_steps));
  require(c.outer_lr > 0 && c.outer_lr <= 10, "--outer-lr: must be in (0, 10]");
  require(c.outer_momentum >= 0 && c.outer_momentum < 1, "--outer-momentum: must be in [0, 1)");
  // An option that the chosen mode ignores is a mistake the user should hear about, not a run
  // that silently trains another way. A value equal to the default cannot be told apart.
  const TrainConfig defaults;
  const bool may_diloco = c.sync == SyncMode::kDiLoCo || c.sync == SyncMode::kAuto;
  require(may_diloco ||
              (c.outer_lr == defaults.outer_lr && c.outer_momentum == defaults.outer_momentum &&
               c.outer_optimizer == defaults.outer_optimizer),
          "--outer-optimizer/--outer-lr/--outer-momentum: only with --sync diloco or auto");
  require(c.sync != SyncMode::kGradient || c.local_steps == defaults.local_steps,
          "--local-steps: only with --sync params or diloco (--sync gradient syncs every step)");
  require(c.sync_seconds >= 0 && c.sync_seconds <= 86400,
          "--sync-seconds: must be in [0, 86400] (0 = off)");
  require(c.sync != SyncMode::kGradient || c.sync_seconds == 0,
          "--sync-seconds: only with --sync params or diloco (--sync gradient syncs every step)");
  require(c.sync_seconds == 0 || c.local_steps == defaults.local_steps,
          "--sync-seconds and --local-steps: give one of them");
  require(c.auto_comm_fraction > 0 && c.auto_comm_fraction <= 100,
          "--auto-comm-fraction: must be in (0, 100]");
  require(may_diloco || !c.sync_overlap, "--sync-overlap: only with --sync diloco or auto");
  require(c.sync_overlap_steps >= 0, "--sync-overlap-steps: must be >= 0 (0 = the whole round)");
  require(c.sync_overlap || c.sync_overlap_steps == 0,
          "--sync-overlap-steps: only with --sync-overlap");
  require(c.sync == SyncMode::kAuto || c.auto_comm_fraction == defaults.auto_comm_fraction,
          "--auto-comm-fraction: only with --sync auto");
  // int8 keeps the error it makes and sends it with the next upload: that works for the
  // pseudo-gradients of diloco's outer step, not for a gradient applied once or for parameters.
  require(c.wire_dtype != WireDType::kInt8 || has_outer_step(c),
          "--wire-dtype int8: only with --sync diloco and an outer step (--outer-optimizer "
          "nesterov or sgd); its pseudo-gradients carry the rounding error to the next round");
  require(c.rebalance_every >= 0, "--rebalance-every: must be >= 0 (0 = never)");
  require(c.join_timeout > 0, "--join-timeout: must be positive");
  require(c.straggler_timeout > 0, "--straggler-timeout: must be positive");
  require(c.stall_warning >= 0, "--stall-warning: must be >= 0 (0 = half --straggler-timeout)");
  require(c.chunk_mb > 0 && c.chunk_mb <= 1024, "--chunk-mb: must be in (0, 1024]");
  require(c.link_probe_seconds >= 0 && c.link_probe_seconds <= 600,
          "--link-probe-seconds: must be in [0, 600] (0 = off)");
  require(c.aggregators >= 1, "--aggregators: must be at least 1");
  require(!c.aggregators_per_host || c.aggregators == 1,
          "--aggregators and --aggregators-per-host: give one of them");
  require(!c.aggregators_per_host || c.on_trainer_loss == TrainerLoss::kAbort,
          "--aggregators-per-host needs --on-trainer-loss abort");
  // A round redone on survivors would need every shard server's step rolled back mid-round.
  // A joiner reaches rank 0 alone, over a communicator of its own (DESIGN §7 "Live join").
  require(c.accept_joins.empty() || (c.aggregators == 1 && !c.aggregators_per_host),
          "--accept-joins needs --aggregators 1 (a joiner reaches rank 0 alone)");
  require(c.aggregators == 1 || c.on_trainer_loss == TrainerLoss::kAbort,
          "--aggregators > 1 needs --on-trainer-loss abort");
  // A leader's upload carries its members' gradients: params mode averages whole models per
  // trainer, and a round redone without a lost member would need the leader's sum undone.
  require(
      c.host_reduce != HostReduce::kOn || c.sync == SyncMode::kGradient,
      "--host-reduce on needs --sync gradient (params, diloco and auto, which may choose diloco, "
      "average each trainer's model)");
  require(c.host_reduce != HostReduce::kOn || c.on_trainer_loss == TrainerLoss::kAbort,
          "--host-reduce on needs --on-trainer-loss abort");
  require(c.min_relative_speed >= 0 && c.min_relative_speed <= 1,
          "--min-relative-speed: must be in [0, 1]");
}

const char *group_title(OptionGroup group) {
  switch (group) {
  case OptionGroup::kDataAndModel:
    return "Data and model";
  case OptionGroup::kOptimisation:
    return "Optimisation";
  case OptionGroup::kPlacement:
    return "Devices";
  case OptionGroup::kDistributed:
    return "Distributed job (under mpirun)";
  case OptionGroup::kOutput:
    return "Checkpoints and output";
  case OptionGroup::kTesting:
    return ""; // CLI11 hides an option whose group is empty
  }
  return "Options";
}

std::string json_key(const OptionInfo &option) {
  std::string key = option.name;
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

// Every option of the table under its json_key(); enums by their names (config/choices.h), so the
// JSON is what it was when these were strings. Keys are sorted (nlohmann::json's object), so a
// config's JSON, and the checkpoint holding it, does not depend on the table's order.
void to_json(nlohmann::json &j, const TrainConfig &c) {
  j = nlohmann::json::object();
  visit_train_options([&](const OptionInfo &option, auto member) {
    using T = std::decay_t<decltype(c.*member)>;
    if constexpr (is_named_enum_v<T>)
      j[json_key(option)] = name_of(c.*member);
    else
      j[json_key(option)] = c.*member;
  });
}

namespace {
// One stored value as the member's type. The JSON comes from a checkpoint file, so a value of
// another type (or an integer out of the member's range, which nlohmann's get<> would convert
// with undefined behaviour) is a UserError naming the key, not a json::type_error.
template <class T> T json_value(const nlohmann::json &v, const std::string &key) {
  const auto wrong = [&](const char *expected) {
    return UserError(fmt::format("stored config: '{}' is {}, not {}", key, v.dump(), expected));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean())
      throw wrong("true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(std::numeric_limits<T>::max())
                                : v.get<int64_t>() < int64_t(std::numeric_limits<T>::min()) ||
                                      v.get<int64_t>() > int64_t(std::numeric_limits<T>::max())))
      throw wrong("an integer in range");
    return v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number())
      throw wrong("a number");
    return v.get<T>();
  } else {
    if (!v.is_string())
      throw wrong("a string");
    return v.get<T>();
  }
}
} // namespace

void from_json(const nlohmann::json &j, TrainConfig &c) {
  // Missing keys keep their defaults, so configs written by older versions still load.
  const TrainConfig defaults;
  visit_train_options([&](const OptionInfo &option, auto member) {
    using T = std::decay_t<decltype(c.*member)>;
    const std::string key = json_key(option);
    const auto found = j.find(key);
    if (found == j.end())
      c.*member = defaults.*member;
    else if constexpr (is_named_enum_v<T>)
      c.*member = parse_named<T>(option.name, json_value<std::string>(*found, key));
    else
      c.*member = json_value<T>(*found, key);
  });
}

} // namespace hetrain
