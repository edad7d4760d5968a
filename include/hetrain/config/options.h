// The options of `hetrain train`, in one table: each row is a flag name, its group in --help, its
// help text and the member of TrainConfig (or, for the hidden testing-only options, of FaultPlan)
// that holds it. The command line (cli/), to_json/from_json (the config stored in checkpoints),
// validate()'s choice checks and the unit tests all walk these tables, so adding an option means
// a member with its default in TrainConfig plus one row here (and a check in validate() if it has
// limits).
//
// Design: the table is a function template that calls `visit(OptionInfo, member pointer)` once per
// row, in --help order. A visitor is a generic lambda, so each row keeps its member's real type
// (int64_t, double, bool, std::string or an enum of config/choices.h) with no type erasure,
// std::variant or macros, and each user decides per type what to do (CLI11's add_option or
// add_flag; a JSON number, string or name). Defaults are not repeated here: they are TrainConfig's
// member initialisers. JSON keys are not either: a key is the flag name with '_' for '-' (what
// checkpoints have always stored), except that the testing group is never stored.
#pragma once

#include "hetrain/common/faults.h"
#include "hetrain/config/config.h"

#include <string>
#include <vector>

namespace hetrain {

// A heading of `hetrain train --help`. kTesting is hidden (docs/testing.md lists those options).
enum class OptionGroup {
  kDataAndModel,
  kOptimisation,
  kPlacement,
  kDistributed,
  kOutput,
  kTesting
};

struct OptionInfo {
  const char *name; // the long flag without "--"
  OptionGroup group;
  const char *help;
  std::vector<std::string> choices = {}; // a string option's only allowed values (enums: theirs)
};

// The heading CLI11 shows the group under; "" (hidden) for kTesting.
const char *group_title(OptionGroup group);
// The key of an option in the config JSON: "global-batch" -> "global_batch".
std::string json_key(const OptionInfo &option);

// The options a user sets, stored in every checkpoint's config JSON.
template <class Visit> void visit_train_options(Visit &&visit) {
  using C = TrainConfig;
  using O = OptionInfo;
  const OptionGroup data = OptionGroup::kDataAndModel, opt = OptionGroup::kOptimisation,
                    place = OptionGroup::kPlacement, dist = OptionGroup::kDistributed,
                    out = OptionGroup::kOutput;
  visit(O{"data", data, "Training dataset (.h5, see `hetrain data`)"}, &C::data);
  visit(O{"test-data", data, "Evaluation dataset, evaluated after every epoch"}, &C::test_data);
  visit(O{"synthetic", data, "Generated data instead of --data: CxHxW:CLASSES:N"}, &C::synthetic);
  visit(O{"augment", data,
          "Training augmentation: crop[:PAD], flip, resized-crop[:MIN], comma-separated"},
        &C::augment);
  visit(O{"model", data, "mlp | cnn | resnet, or a TorchScript file (FILE.pt)"}, &C::model);
  visit(O{"model-plugin", data, "A C++ model: LIB.so[:NAME] (include/hetrain/model/plugin.h)"},
        &C::model_plugin);
  visit(O{"loss", data, "cross-entropy | mse | bce-with-logits | model (the module's loss method)"},
        &C::loss);
  visit(O{"label-smoothing", data, "cross-entropy: label smoothing in [0, 1)"},
        &C::label_smoothing);
  visit(O{"data-residency", data, "auto | memory | stream (HDF5 hyperslab reads)"},
        &C::data_residency);
  visit(O{"limit-train-samples", data, "Train on the first N samples only (0 = all)"},
        &C::limit_train_samples);

  visit(O{"epochs", opt, "Passes over the training set"}, &C::epochs);
  visit(O{"global-batch", opt, "Samples per optimizer step (G)"}, &C::global_batch);
  visit(O{"micro-batch", opt, "Samples per forward/backward pass (m)"}, &C::micro_batch);
  visit(O{"optimizer", opt, "sgd | momentum | adam | adamw", {"sgd", "momentum", "adam", "adamw"}},
        &C::optimizer);
  visit(O{"lr", opt, "Learning rate"}, &C::lr);
  visit(O{"momentum", opt, "Momentum of --optimizer momentum"}, &C::momentum);
  visit(O{"weight-decay", opt, "L2 (decoupled for adamw)"}, &C::weight_decay);
  visit(O{"beta1", opt, "Adam beta1"}, &C::beta1);
  visit(O{"beta2", opt, "Adam beta2"}, &C::beta2);
  visit(O{"eps", opt, "Adam epsilon"}, &C::eps);
  visit(O{"lr-schedule", opt, "constant | cosine | step", {"constant", "cosine", "step"}},
        &C::lr_schedule);
  visit(O{"warmup-steps", opt, "Linear warm-up steps"}, &C::warmup_steps);
  visit(O{"lr-step-size", opt, "step schedule: decay every N steps (0 = every epoch)"},
        &C::lr_step_size);
  visit(O{"lr-gamma", opt, "step schedule: decay factor"}, &C::lr_gamma);
  visit(O{"seed", opt, "Seed of the initial model and of every epoch's order"}, &C::seed);

  visit(O{"device", place, "auto | cuda | cpu"}, &C::device);
  visit(O{"aggregator-device", place,
          "auto | cuda | cpu: where rank 0 averages and steps (auto: cuda when this build, its "
          "LibTorch and a visible GPU allow it)"},
        &C::aggregator_device);
  visit(O{"amp", place,
          "off | bf16 | fp16: mixed-precision forward passes (fp16 with loss scaling; CUDA "
          "trainers, and bf16 on CPU trainers)"},
        &C::amp);
  visit(O{"threads", place, "Torch threads (0 = the cores this process may use)"}, &C::threads);
  visit(O{"deterministic", place,
          "Deterministic kernels only and no TF32 (cuDNN, cuBLAS, scatter): GPU runs repeat bit "
          "for bit and splits agree to rounding, at some speed"},
        &C::deterministic);

  visit(O{"sync", dist,
          "gradient: exact gradient of the global batch | params: local steps, then "
          "sample-weighted parameter averaging | diloco: local steps, then an outer optimizer "
          "step on the averaged pseudo-gradient | auto: gradient where the measured links allow, "
          "else diloco (rank 0 decides at start-up and says why)"},
        &C::sync);
  visit(O{"local-steps", dist, "params, diloco: local optimizer steps per sync"}, &C::local_steps);
  visit(O{"sync-seconds", dist,
          "params, diloco: instead of --local-steps, sync about every S seconds of compute (0 = "
          "off; the steps are chosen at start-up from the measured speeds)"},
        &C::sync_seconds);
  visit(O{"auto-comm-fraction", dist,
          "auto: exact gradients while the exact round's communication is at most this fraction "
          "of its compute; else diloco, syncing every L steps to keep it there (default 0.25)"},
        &C::auto_comm_fraction);
  visit(
      O{"outer-optimizer", dist, "diloco: nesterov | sgd | average (average equals --sync params)"},
      &C::outer_optimizer);
  visit(O{"outer-lr", dist, "diloco: learning rate of the outer step"}, &C::outer_lr);
  visit(O{"outer-momentum", dist, "diloco: momentum of the outer nesterov step"},
        &C::outer_momentum);
  visit(O{"sync-overlap", dist,
          "diloco: start the next period's local steps while the previous sync is in flight and "
          "apply its outer update when it lands (one period late), hiding the wire behind compute"},
        &C::sync_overlap);
  visit(O{"sync-overlap-steps", dist,
          "sync-overlap: apply the landed sync before this local step, so the round's later steps "
          "start from the new master (0 = after the round's last step: the whole round overlaps)"},
        &C::sync_overlap_steps);
  visit(O{"wire-dtype", dist,
          "fp32 | bf16 | fp16 | int8: dtype of the trainers' uploads (accumulation is fp32; "
          "int8: --sync diloco's pseudo-gradients, with error feedback)"},
        &C::wire_dtype);
  visit(O{"balance", dist,
          "Shares per trainer: benchmark (by measured speed) | equal | static:a,b,..."},
        &C::balance);
  visit(O{"rebalance-every", dist,
          "Re-plan from measured round times every R rounds (default 5; 0 = never)"},
        &C::rebalance_every);
  visit(O{"join-timeout", dist, "Seconds rank 0 waits for trainer reports"}, &C::join_timeout);
  visit(O{"straggler-timeout", dist, "Seconds any wait for a peer may take before the job ends"},
        &C::straggler_timeout);
  visit(O{"stall-warning", dist,
          "Seconds into a round after which rank 0 names the trainers it still waits for (0 = "
          "half --straggler-timeout)"},
        &C::stall_warning);
  visit(O{"on-trainer-loss", dist,
          "abort: a lost trainer ends the job (exit 3) after a checkpoint; continue: rank 0 drops "
          "it, re-plans the round and trains on (exit 5 at the end); continue needs mpirun "
          "--enable-recovery"},
        &C::on_trainer_loss);
  visit(O{"overlap", dist,
          "CPU trainers send each gradient chunk as soon as the last backward pass has finished "
          "it, overlapping the upload with the rest of backward"},
        &C::overlap);
  visit(O{"accept-joins", dist,
          "Write FILE so that `hetrain join FILE` (under its own mpirun) can add a trainer to "
          "this running job at a round boundary; both mpiruns need --ompi-server (README "
          "\"Machines that come and go\")"},
        &C::accept_joins);
  visit(O{"host-reduce", dist,
          "auto | on | off: trainers on one host sum their gradients there and one of them "
          "uploads the host's sum (auto: on where an aggregator rank sits on another host; "
          "needs --sync gradient and --on-trainer-loss abort)"},
        &C::host_reduce);
  visit(O{"chunk-mb", dist, "Size of one message of the flat buffers"}, &C::chunk_mb);
  visit(O{"link-probe-seconds", dist,
          "Seconds the startup probe of every trainer-aggregator link may take (latency, MB/s "
          "both ways; the plan counts them); 0 = off, every link assumed 1 GB/s"},
        &C::link_probe_seconds);
  visit(O{"aggregators", dist,
          "Ranks 0..A-1 aggregate, each owning 1/A of the parameters (sharded optimizer state); "
          "the trainers are ranks A and up"},
        &C::aggregators);
  visit(O{"aggregators-per-host", dist,
          "One aggregator per host, next to its trainers (A = the job's hosts): ranks 0..A-1 "
          "must sit one per host (mpirun --map-by node, srun --distribution=cyclic)"},
        &C::aggregators_per_host);
  visit(O{"min-relative-speed", dist,
          "Admission: reject trainers slower than this fraction of the fastest"},
        &C::min_relative_speed);
  visit(O{"require-gpu", dist, "Admission: reject trainers without a GPU"}, &C::require_gpu);
  visit(O{"require-bf16", dist, "Admission: reject trainers whose device has no bf16 arithmetic"},
        &C::require_bf16);

  visit(O{"checkpoint-dir", out, "Where checkpoints are written"}, &C::checkpoint_dir);
  visit(O{"resume", out,
          "Continue from a checkpoint: auto (the newest valid one in --checkpoint-dir, or start "
          "afresh when there is none) or a file"},
        &C::resume);
  visit(O{"checkpoint-every", out, "Also checkpoint every N steps (0 = epoch ends only)"},
        &C::checkpoint_every);
  visit(O{"keep-checkpoints", out, "Newest checkpoints to keep"}, &C::keep_checkpoints);
  visit(O{"summary-json", out, "Write a JSON summary of the run here"}, &C::summary_json);
  visit(O{"metrics", out,
          "Write a JSON line per round and per epoch here (schema in README \"Metrics\")"},
        &C::metrics);
  visit(O{"timeline", out,
          "Write a Chrome trace here (one row per rank; open in Perfetto or chrome://tracing)"},
        &C::timeline);
  visit(O{"prometheus", out,
          "Keep a node_exporter textfile here with throughput, shares, loss, accuracy and the "
          "trainers' GPU figures"},
        &C::prometheus);
  visit(O{"progress-seconds", out, "Seconds between progress lines"}, &C::progress_seconds);
}

// Testing only (docs/testing.md): hidden from --help, accepted on the command line and in --config
// files, never stored in checkpoints; the command line arms them with arm_faults().
template <class Visit> void visit_fault_options(Visit &&visit) {
  using F = FaultPlan;
  using O = OptionInfo;
  const OptionGroup test = OptionGroup::kTesting;
  visit(O{"debug-sample-log", test,
          "Trainers append 'epoch step attempt index' per sample used to FILE.rank<r>"},
        &F::debug_sample_log);
  visit(O{"fault-slow-probe-rank", test, "This rank reports a 100x slower training probe"},
        &F::slow_probe_rank);
  visit(O{"fault-crash-in-checkpoint", test,
          "The process writing checkpoints dies (SIGKILL) inside its Nth write, after the data "
          "and before the rename"},
        &F::crash_in_checkpoint);
  visit(O{"fault-stall-rank", test, "This rank stops answering in its 3rd round"}, &F::stall_rank);
  visit(O{"fault-kill-rank", test, "This rank dies (SIGKILL) in its 3rd round"}, &F::kill_rank);
  visit(O{"fault-half-send-rank", test,
          "With --aggregators > 1: this trainer sends its 3rd round's gradient to the shard "
          "servers only, then dies (SIGKILL)"},
        &F::half_send_rank);
  visit(O{"fault-slow-checkpoint", test,
          "Every checkpoint write sleeps this many seconds before writing (a slow disk)"},
        &F::slow_checkpoint);
  visit(O{"fault-probe-oom-rank", test,
          "This trainer's start-up training probe runs out of memory at every micro-batch size"},
        &F::probe_oom_rank);
  visit(O{"fault-oom-above", test, "A micro-batch of more than N samples fails as out of memory"},
        &F::oom_above);
}

} // namespace hetrain
