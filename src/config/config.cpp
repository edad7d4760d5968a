#include "hetrain/config/config.h"

#include "hetrain/common/error.h"
#include "hetrain/schedule/plan.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
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

void validate(const TrainConfig &c) {
  require(!c.data.empty(), "--data: a training dataset is required");
  require_one_of("model", c.model, {"mlp", "cnn", "resnet"});
  require_one_of("optimizer", c.optimizer, {"sgd", "momentum", "adam", "adamw"});
  require_one_of("lr-schedule", c.lr_schedule, {"constant", "cosine", "step"});
  require_one_of("device", c.device, {"auto", "cuda", "cpu"});
  require_one_of("aggregator-device", c.aggregator_device, {"auto", "cuda", "cpu"});
  require_one_of("amp", c.amp, {"off", "bf16", "fp16"});
  require_one_of("data-residency", c.data_residency, {"auto", "memory", "stream"});
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
  require_one_of("sync", c.sync, {"gradient", "params"});
  require_one_of("wire-dtype", c.wire_dtype, {"fp32", "bf16", "fp16"});
  require(c.local_steps >= 1,
          fmt::format("--local-steps: must be at least 1, got {}", c.local_steps));
  require(c.rebalance_every >= 0, "--rebalance-every: must be >= 0 (0 = never)");
  require(c.join_timeout > 0, "--join-timeout: must be positive");
  require(c.straggler_timeout > 0, "--straggler-timeout: must be positive");
  require(c.stall_warning >= 0, "--stall-warning: must be >= 0 (0 = half --straggler-timeout)");
  require_one_of("on-trainer-loss", c.on_trainer_loss, {"abort", "continue"});
  require(c.chunk_mb > 0 && c.chunk_mb <= 1024, "--chunk-mb: must be in (0, 1024]");
  require(c.aggregators >= 1, "--aggregators: must be at least 1");
  // Shard servers step their part of a gradient; in params mode rank 0 averages whole models,
  // and a round redone on survivors would need every shard rolled back mid-round.
  require(c.aggregators == 1 || c.sync == "gradient",
          "--aggregators > 1 needs --sync gradient (params mode averages on rank 0)");
  require(c.aggregators == 1 || c.on_trainer_loss == "abort",
          "--aggregators > 1 needs --on-trainer-loss abort");
  require(c.min_relative_speed >= 0 && c.min_relative_speed <= 1,
          "--min-relative-speed: must be in [0, 1]");
}

void to_json(nlohmann::json &j, const TrainConfig &c) {
  j = nlohmann::json{{"data", c.data},
                     {"test_data", c.test_data},
                     {"model", c.model},
                     {"data_residency", c.data_residency},
                     {"limit_train_samples", c.limit_train_samples},
                     {"epochs", c.epochs},
                     {"global_batch", c.global_batch},
                     {"micro_batch", c.micro_batch},
                     {"optimizer", c.optimizer},
                     {"lr", c.lr},
                     {"momentum", c.momentum},
                     {"beta1", c.beta1},
                     {"beta2", c.beta2},
                     {"eps", c.eps},
                     {"weight_decay", c.weight_decay},
                     {"lr_schedule", c.lr_schedule},
                     {"warmup_steps", c.warmup_steps},
                     {"lr_step_size", c.lr_step_size},
                     {"lr_gamma", c.lr_gamma},
                     {"seed", c.seed},
                     {"device", c.device},
                     {"threads", c.threads},
                     {"checkpoint_dir", c.checkpoint_dir},
                     {"checkpoint_every", c.checkpoint_every},
                     {"keep_checkpoints", c.keep_checkpoints},
                     {"summary_json", c.summary_json},
                     {"metrics", c.metrics},
                     {"timeline", c.timeline},
                     {"prometheus", c.prometheus},
                     {"progress_seconds", c.progress_seconds},
                     {"sync", c.sync},
                     {"local_steps", c.local_steps},
                     {"wire_dtype", c.wire_dtype},
                     {"balance", c.balance},
                     {"rebalance_every", c.rebalance_every},
                     {"join_timeout", c.join_timeout},
                     {"straggler_timeout", c.straggler_timeout},
                     {"stall_warning", c.stall_warning},
                     {"on_trainer_loss", c.on_trainer_loss},
                     {"chunk_mb", c.chunk_mb},
                     {"overlap", c.overlap},
                     {"aggregators", c.aggregators},
                     {"min_relative_speed", c.min_relative_speed},
                     {"require_gpu", c.require_gpu},
                     {"require_bf16", c.require_bf16},
                     {"resume", c.resume},
                     {"aggregator_device", c.aggregator_device},
                     {"amp", c.amp}};
}

void from_json(const nlohmann::json &j, TrainConfig &c) {
  // Missing keys keep their defaults, so configs written by older versions still load.
  TrainConfig d;
  c.data = j.value("data", d.data);
  c.test_data = j.value("test_data", d.test_data);
  c.model = j.value("model", d.model);
  c.data_residency = j.value("data_residency", d.data_residency);
  c.limit_train_samples = j.value("limit_train_samples", d.limit_train_samples);
  c.epochs = j.value("epochs", d.epochs);
  c.global_batch = j.value("global_batch", d.global_batch);
  c.micro_batch = j.value("micro_batch", d.micro_batch);
  c.optimizer = j.value("optimizer", d.optimizer);
  c.lr = j.value("lr", d.lr);
  c.momentum = j.value("momentum", d.momentum);
  c.beta1 = j.value("beta1", d.beta1);
  c.beta2 = j.value("beta2", d.beta2);
  c.eps = j.value("eps", d.eps);
  c.weight_decay = j.value("weight_decay", d.weight_decay);
  c.lr_schedule = j.value("lr_schedule", d.lr_schedule);
  c.warmup_steps = j.value("warmup_steps", d.warmup_steps);
  c.lr_step_size = j.value("lr_step_size", d.lr_step_size);
  c.lr_gamma = j.value("lr_gamma", d.lr_gamma);
  c.seed = j.value("seed", d.seed);
  c.device = j.value("device", d.device);
  c.threads = j.value("threads", d.threads);
  c.checkpoint_dir = j.value("checkpoint_dir", d.checkpoint_dir);
  c.checkpoint_every = j.value("checkpoint_every", d.checkpoint_every);
  c.keep_checkpoints = j.value("keep_checkpoints", d.keep_checkpoints);
  c.summary_json = j.value("summary_json", d.summary_json);
  c.metrics = j.value("metrics", d.metrics);
  c.timeline = j.value("timeline", d.timeline);
  c.prometheus = j.value("prometheus", d.prometheus);
  c.progress_seconds = j.value("progress_seconds", d.progress_seconds);
  c.sync = j.value("sync", d.sync);
  c.local_steps = j.value("local_steps", d.local_steps);
  c.wire_dtype = j.value("wire_dtype", d.wire_dtype);
  c.balance = j.value("balance", d.balance);
  c.rebalance_every = j.value("rebalance_every", d.rebalance_every);
  c.join_timeout = j.value("join_timeout", d.join_timeout);
  c.straggler_timeout = j.value("straggler_timeout", d.straggler_timeout);
  c.stall_warning = j.value("stall_warning", d.stall_warning);
  c.on_trainer_loss = j.value("on_trainer_loss", d.on_trainer_loss);
  c.chunk_mb = j.value("chunk_mb", d.chunk_mb);
  c.overlap = j.value("overlap", d.overlap);
  c.aggregators = j.value("aggregators", d.aggregators);
  c.min_relative_speed = j.value("min_relative_speed", d.min_relative_speed);
  c.require_gpu = j.value("require_gpu", d.require_gpu);
  c.require_bf16 = j.value("require_bf16", d.require_bf16);
  c.resume = j.value("resume", d.resume);
  c.aggregator_device = j.value("aggregator_device", d.aggregator_device);
  c.amp = j.value("amp", d.amp);
}

} // namespace hetrain
