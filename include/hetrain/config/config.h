// Everything `hetrain train` can be told, in one plain struct. The command line (cli/) and the
// config file fill it; validate() refuses impossible values with one clear message; the whole
// struct is stored as JSON in every checkpoint so a run can always be reconstructed. The member
// initialisers are the defaults; the flags, help texts and JSON keys are in config/options.h.
// Options with a fixed set of names are enums (config/choices.h). The testing-only options are
// not here: they fill a FaultPlan (common/faults.h).
#pragma once

#include "hetrain/config/choices.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace hetrain {

struct TrainConfig {
  // Data and model
  std::string data;          // training dataset (.h5)
  std::string test_data;     // optional evaluation dataset (.h5)
  std::string synthetic;     // CxHxW:CLASSES:N: generated data instead of --data
  std::string augment;       // crop[:PAD],flip,resized-crop[:MIN] (data/augment.h)
  std::string model = "cnn"; // a built-in name or a TorchScript file
  std::string model_plugin;  // LIB.so[:NAME]: a C++ model; overrides model
  LossKind loss = LossKind::kCrossEntropy;
  double label_smoothing = 0.0;
  DataResidency data_residency = DataResidency::Auto;
  int64_t limit_train_samples = 0; // > 0: train on the first N samples only (quick runs, tests)

  // Schedule of the optimisation
  int64_t epochs = 1;
  int64_t global_batch = 256;     // samples per optimizer step (G = K * m)
  int64_t micro_batch = 32;       // samples per forward/backward (m)
  std::string optimizer = "adam"; // sgd | momentum | adam | adamw
  double lr = 1e-3;
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  std::string lr_schedule = "constant"; // constant | cosine | step
  int64_t warmup_steps = 0;
  int64_t lr_step_size = 0; // step schedule: decay every this many steps (0 = once per epoch)
  double lr_gamma = 0.1;    // step schedule: factor per decay
  uint64_t seed = 1;

  // Where it runs
  DeviceChoice device = DeviceChoice::kAuto;            // trainers; one-process runs
  DeviceChoice aggregator_device = DeviceChoice::kAuto; // where rank 0 averages and steps
  AmpMode amp = AmpMode::kOff;                          // autocast of forward passes
  int threads = 0;            // torch intra-op threads; 0 = the cores this process may use
  bool deterministic = false; // deterministic kernels, no TF32 (GPU runs repeatable bit for bit)

  // The distributed job (world size > 1; DESIGN §3-§7)
  SyncMode sync = SyncMode::kGradient; // exact gradient | params (local SGD, model averaging) |
                                       // diloco (local steps, outer optimizer)
  int64_t local_steps = 4;             // params, diloco: local optimizer steps between syncs
  double sync_seconds = 0; // params, diloco: > 0 picks local_steps for a round of this compute
  double auto_comm_fraction = 0.25; // auto: exact while communication <= this share of compute
  // diloco: the outer step on the averaged pseudo-gradient (start minus end parameters)
  OuterOptimizer outer_optimizer = OuterOptimizer::kNesterov;
  double outer_lr = 0.7;
  double outer_momentum = 0.9;
  // diloco: the next period's local steps start while the previous sync is in flight; its outer
  // update is applied when it lands (one-period delay; DESIGN §4 "Sync overlap")
  bool sync_overlap = false;
  // --sync-overlap: the local steps before the landed sync is applied (0: after the round's last)
  int64_t sync_overlap_steps = 0;
  WireDType wire_dtype = WireDType::kFp32; // trainers' uploads on the wire
  std::string balance = "benchmark";       // benchmark | equal | static:a,b,...
  int64_t rebalance_every = 5;    // re-plan from measured round times every R rounds (0 = never)
  double join_timeout = 60;       // seconds rank 0 waits for the trainers' reports
  double straggler_timeout = 120; // seconds any wait for a peer may take in a round
  double stall_warning = 0;       // warn about late trainers after this long (0 = timeout / 2)
  TrainerLoss on_trainer_loss = TrainerLoss::kAbort; // continue needs mpirun --enable-recovery
  double chunk_mb = 4;                               // size of one message of the flat buffers
  bool aggregators_per_host = false; // A = the hosts of the job, one aggregator on each
  int aggregators = 1;  // ranks 0..A-1 each own 1/A of the flat buffer (sharded aggregation)
  bool overlap = false; // CPU trainers send gradient chunks during the last backward pass
  // Trainers of one host sum their gradients there and one uploads: auto (when an aggregator sits
  // on another host) | on (every host with >= 2 trainers) | off
  HostReduce host_reduce = HostReduce::kAuto;
  double link_probe_seconds = 2; // startup link probe for the whole job (0 = off: 1 GB/s assumed)
  double min_relative_speed = 0; // admission: probe speed / fastest trainer's
  bool require_gpu = false;      // admission: trainers without a GPU are rejected
  bool require_bf16 = false;     // admission: trainers without bf16 hardware are rejected

  // Output
  std::string checkpoint_dir = "checkpoints";
  std::string resume; // "" (start afresh) | auto (newest valid in checkpoint_dir) | a file
  int64_t checkpoint_every = 0; // also every R steps (0 = at epoch ends and at the end only)
  int64_t keep_checkpoints = 3;
  std::string summary_json; // write a JSON summary here at the end
  std::string accept_joins; // publish where `hetrain join` finds the job (DESIGN §7)
  // Not an option: the train command's own arguments as given (after --config was expanded), which
  // --accept-joins hands to joiners so that they train the same way.
  std::vector<std::string> command_line;
  std::string metrics;           // --metrics FILE.jsonl: a record per round and per epoch
  std::string timeline;          // --timeline FILE.json: Chrome trace, one row per rank
  std::string prometheus;        // --prometheus FILE.prom: node_exporter textfile
  double progress_seconds = 5.0; // a progress line at most this often
};

// Throws UserError naming the first bad value.
void validate(const TrainConfig &config);

// Local optimizer steps a trainer takes per round: --local-steps under --sync params and diloco,
// else 1 (the exact round is one step).
inline int64_t local_steps_of(const TrainConfig &config) {
  return config.sync == SyncMode::kGradient ? 1 : config.local_steps;
}
// --sync diloco with an outer optimizer step (not plain averaging): trainers upload their
// pseudo-gradients and the aggregator steps the master copy with the outer optimizer.
inline bool has_outer_step(const TrainConfig &config) {
  return config.sync == SyncMode::kDiLoCo && config.outer_optimizer != OuterOptimizer::kAverage;
}
// --data, or "synthetic:CxHxW:CLASSES:N" for --synthetic: what Dataset and read_dataset_meta open.
std::string data_source(const TrainConfig &config);

void to_json(nlohmann::json &out, const TrainConfig &config);
void from_json(const nlohmann::json &in, TrainConfig &config);

} // namespace hetrain
