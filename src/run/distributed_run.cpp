// The distributed job (DESIGN §1-§7), gradient sync: read it top to bottom.
//
//   every trainer: probe + benchmark -> report to rank 0 -> verdict
//   rank 0: collect reports (deadline) -> admit -> communicator of the admitted -> plan
//   each round:  rank 0 sends each trainer its slice of the epoch's order
//                trainers sum the gradients of their micro-batches, send the sum (in chunks),
//                their sample count and BatchNorm buffers
//                rank 0 reduces every chunk as soon as all copies of it arrived (weights 1/S),
//                steps the optimizer on its master copy and sends parameters + averaged buffers
//   every --rebalance-every rounds rank 0 re-plans from the measured compute times.
//   --aggregators A: ranks 1..A-1 reduce and step shards of the buffer (shard_server.cpp); rank 0
//   then keeps shard 0 and gathers the others for checkpoints and evaluation.
//
// All traffic after admission is point to point with deadlines, never a collective a lost peer
// would block.
#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/cluster/admission.h"
#include "hetrain/cluster/node_report.h"
#include "hetrain/cluster/report_message.h"
#include "hetrain/cluster/training_probe.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/atomic_file.h"
#include "hetrain/common/check.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"
#include "hetrain/common/signals.h"
#include "hetrain/common/system_info.h"
#include "hetrain/observe/gpu_monitor.h"
#include "hetrain/observe/metrics.h"
#include "hetrain/observe/prometheus.h"
#include "hetrain/observe/timeline.h"
#include "hetrain/run/training_run.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/train/amp.h"
#include "hetrain/train/compute.h"

#include "protocol.h"
#include "run_support.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <fstream>
#include <numeric>
#include <optional>
#include <thread>

namespace hetrain {
using namespace run;
using namespace protocol;
namespace {

// ---------------------------------------------------------------------------------------------
// Trainer side
// ---------------------------------------------------------------------------------------------
TrainSummary run_trainer(const TrainConfig &config, int world_rank, int local_rank) {
  TrainSummary summary;
  summary.world_size = process_identity().world_size;
  const DatasetMeta meta = read_dataset_meta(config.data);
  const ModelSpec spec = spec_of(config, meta);
  const torch::Device device = choose_device(config.device, local_rank);
  torch::set_num_threads(config.threads > 0 ? config.threads : usable_cores());

  // --- report and admission ---
  NodeReport node = probe_node();
  run_cpu_benchmarks(node, 0.3);
  if (device.is_cuda())
    run_gpu_benchmarks(node, device.index(), 0.2); // cuBLAS GEMM and pinned copies, capped
  ProbeResult probe = run_training_probe(spec, config.micro_batch, device);
  if (config.fault_slow_probe_rank == world_rank)
    probe.samples_per_sec /= 100; // testing hook (--fault-slow-probe-rank)
  TrainerReport report;
  report.rank = world_rank;
  report.pid = node.pid;
  report.host = node.host;
  report.cpu_model = node.cpu_model;
  // The GPU this trainer uses, when it uses one.
  const GpuInfo *gpu = device.is_cuda() && !node.gpus.empty()
                           ? &node.gpus[static_cast<size_t>(device.index()) % node.gpus.size()]
                           : nullptr;
  report.device = gpu ? gpu->name : fmt::format("cpu ({} cores)", node.usable_cores);
  report.blas = node.blas.name;
  report.usable_cores = node.usable_cores;
  report.mem_available = node.mem_available;
  report.swap_free = node.swap_free;
  report.gpu_count = static_cast<int>(node.gpus.size());
  report.device_memory_free = gpu ? gpu->memory_free : node.mem_available;
  report.cpu_score = node.cpu_score;
  report.matmul_gflops = node.matmul_gflops;
  report.probe_samples_per_sec = probe.samples_per_sec;
  report.probe_peak_bytes = probe.peak_bytes;
  report.gemm_tflops_fp16 = node.gemm_tflops_fp16;
  report.gemm_tflops_fp32 = node.gemm_tflops_fp32;
  report.h2d_gbps = node.h2d_gbps;
  report.bf16 = gpu ? gpu->bf16 : node.cpu_bf16;
  std::vector<uint8_t> bytes = encode_report(report);
  char verdict[kVerdictBytes] = {0};
  {
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, kTagReport,
                        MPI_COMM_WORLD, &r));
    set.add(r, 0, "sending this trainer's report");
    CHECK_MPI(MPI_Irecv(verdict, kVerdictBytes, MPI_BYTE, 0, kTagVerdict, MPI_COMM_WORLD, &r));
    set.add(r, 0, "waiting for rank 0's admission verdict");
    set.wait_all(config.join_timeout + 60);
  }
  const bool admitted = verdict[0] == '1';
  MPI_Comm job;
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, admitted ? 0 : MPI_UNDEFINED, world_rank, &job));
  if (!admitted) {
    log_warn("not admitted by rank 0: {}; this rank exits", verdict + 1);
    return summary;
  }
  CHECK_MPI(MPI_Comm_set_errhandler(job, MPI_ERRORS_RETURN));

  // --- model, data, the flat buffers ---
  torch::manual_seed(config.seed);
  auto model = make_model(spec);
  model->to(device);
  FlatParameters flat(*model);
  Dataset data(config.data, parse_residency(config.data_residency));
  const int64_t n = config.limit_train_samples > 0
                        ? std::min(config.limit_train_samples, data.size())
                        : data.size();
  const int64_t chunk = chunk_elements(config);
  const int64_t nbuf = buffer_elements(*model);
  // Host copies of what travels: on a CPU trainer the flat buffers themselves (fp32 wire); on a
  // GPU trainer pinned buffers, filled chunk by chunk just before each chunk is sent.
  const bool host = device.is_cpu();
  const WireFormat wire = wire_format(config.wire_dtype);
  torch::Tensor params_host =
      host ? flat.params() : host_buffer(flat.numel(), torch::kFloat32, true);
  torch::Tensor upload_host = host ? torch::Tensor() : host_buffer(flat.numel(), wire.dtype, true);
  std::vector<float> buffers(static_cast<size_t>(nbuf));
  MixedPrecision amp(config.amp, device);
  amp.set_fault_oom_above(config.fault_oom_above);
  if (amp.enabled() && device.is_cuda() && gpu && !gpu->bf16 && amp.dtype() == torch::kBFloat16)
    log_warn("--amp bf16 on {} (compute capability {}.{}): no bf16 hardware, expect it slow",
             gpu->name, gpu->cc_major, gpu->cc_minor);
  const bool params_mode = config.sync == "params";
  // Who reduces which part of the flat buffer: rank 0 all of it, or with --aggregators A each of
  // ranks 0..A-1 its shard. Gradients go to, and parameters come from, each piece's owner.
  const ShardLayout layout = shard_layout_checked(flat.numel(), config);
  // --overlap: the gradient sum of a CPU trainer is sent chunk by chunk from the flat buffer
  // during the last backward pass (a GPU trainer's goes through a dtype conversion and pinned
  // copies after it; fp16 is unscaled after it; params mode sends parameters after local steps).
  const bool overlap = config.overlap && !params_mode && host && wire.dtype == torch::kFloat32;
  if (config.overlap && !overlap)
    log_warn("--overlap applies to CPU trainers in --sync gradient with --wire-dtype fp32; this "
             "trainer sends after backward");
  // params mode: each trainer steps its own optimizer (its state stays here) between averagings.
  std::unique_ptr<Optimizer> local_optimizer;
  std::unique_ptr<LrSchedule> local_schedule;
  if (params_mode) {
    local_optimizer = std::make_unique<Optimizer>(optimizer_options(config), flat.numel(), device);
    const int64_t steps_per_epoch = (n + config.global_batch - 1) / config.global_batch;
    local_schedule = std::make_unique<LrSchedule>(lr_schedule(config, steps_per_epoch));
  }
  Timeline timeline(!config.timeline.empty());
  timeline.set_rank(world_rank);
  // NVML figures for the metrics file and the Prometheus textfile, when asked for either.
  const bool watch_gpu =
      device.is_cuda() && (!config.metrics.empty() || !config.prometheus.empty());
  std::ofstream sample_log;
  if (!config.debug_sample_log.empty())
    sample_log.open(fmt::format("{}.rank{}", config.debug_sample_log, world_rank));

  // The next command is always posted: rank 0 may say "stop" while this trainer waits for
  // parameters (a job ending because another trainer was lost), not only between rounds.
  CommandInbox inbox(job, kTagCommand, kCommandLength);
  struct StopInstead {}; // rank 0 sent kStop where parameters were due
  // False when rank 0 ended the job instead of sending parameters.
  auto receive_parameters = [&](const char *when) {
    ScopedSpan span(timeline, Span::kWait);
    RequestSet set;
    for (const Piece &p : layout.pieces)
      irecv_chunks(set, params_host.data_ptr<float>() + p.begin, p.length, chunk, p.owner,
                   kTagParams, job, fmt::format("parameters from rank {} {}", p.owner, when));
    irecv_chunks(set, buffers.data(), nbuf, chunk, 0, kTagParamBuffers, job,
                 fmt::format("buffers from rank 0 {}", when));
    // Rank 0 sends parameters only after hearing from every trainer (up to the straggler
    // timeout), and must have time to checkpoint when one is lost: wait longer than it does.
    try {
      set.wait_all(2 * config.straggler_timeout + 30, [&] {
        if (inbox.poll() && inbox.command()[0] == kStop)
          throw StopInstead{};
      });
    } catch (const StopInstead &) {
      set.cancel_pending();
      return false;
    }
    torch::NoGradGuard no_grad;
    if (!host)
      flat.params().copy_(params_host);
    load_buffers(*model, buffers.data());
    return true;
  };

  inbox.post();
  bool stopped = !receive_parameters("at the start");
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  int64_t rounds_worked = 0;
  while (!stopped) {
    if (!inbox.poll()) {
      ScopedSpan span(timeline, Span::kWait);
      // Rank 0 evaluates and checkpoints between epochs: allow for that on top of a round.
      inbox.wait(2 * config.straggler_timeout + 60, "waiting for the next round's command");
    }
    const std::vector<int64_t> command = inbox.command();
    if (command[0] == kStop) {
      if (command[1] == 1) { // rank 0 gathers the --timeline spans
        const std::vector<double> spans = timeline.encode();
        const int64_t length = static_cast<int64_t>(spans.size());
        RequestSet set;
        MPI_Request r;
        CHECK_MPI(MPI_Isend(&length, 1, MPI_INT64_T, 0, kTagTimeline, job, &r));
        set.add(r, 0, "sending the timeline's length");
        isend_chunks(set, spans.data(), length, chunk, MPI_DOUBLE, 8, 0, kTagTimeline, job,
                     "sending the timeline");
        set.wait_all(config.straggler_timeout);
      }
      break;
    }
    inbox.post(); // the next command may come while this round runs
    const int64_t epoch = command[1], offset = command[2], count = command[3];
    const int64_t global_step = command[4], local_steps = command[5], attempt = command[6];
    if (command[0] == kRound) {
      ++rounds_worked;
      if (config.fault_stall_rank == world_rank && rounds_worked == 3) {
        // Testing hook (--fault-stall-rank): a hung trainer, for the deadline tests.
        log_warn("--fault-stall-rank: stalling instead of computing round {}", global_step + 1);
        std::this_thread::sleep_for(std::chrono::duration<double>(config.straggler_timeout * 4));
      }
      if (config.fault_kill_rank == world_rank && rounds_worked == 3) {
        // Testing hook (--fault-kill-rank): a trainer whose node dies, for the failure tests.
        log_warn("--fault-kill-rank: dying (SIGKILL) in round {}", global_step + 1);
        std::raise(SIGKILL);
      }
      if (epoch != order_epoch) {
        order = epoch_permutation(config.seed, epoch, n);
        order_epoch = epoch;
      }
      const auto start = Clock::now();
      const double start_us = wall_microseconds();
      ComputeStats stats;
      torch::Tensor upload;
      RequestSet early; // --overlap: gradient chunks sent during the last backward pass
      if (!params_mode) {
        // gradient: the sum of the gradients of all this trainer's micro-batches.
        GradientReady ready;
        std::vector<int64_t> piece_left; // elements of each piece still without their gradient
        if (overlap) {
          // A piece leaves as soon as every parameter in it has its final gradient.
          for (const Piece &p : layout.pieces)
            piece_left.push_back(p.length);
          float *grads = flat.grads().data_ptr<float>();
          ready = [&, grads](size_t parameter) {
            const ParameterSlot &slot = flat.slots()[parameter];
            const int64_t from = slot.offset, to = slot.offset + slot.numel;
            for (int64_t k = layout.piece_at(from);
                 k < static_cast<int64_t>(layout.pieces.size()) &&
                 layout.pieces[static_cast<size_t>(k)].begin < to;
                 ++k) {
              const Piece &p = layout.pieces[static_cast<size_t>(k)];
              const int64_t lo = std::max(from, p.begin), hi = std::min(to, p.begin + p.length);
              if (hi > lo && (piece_left[static_cast<size_t>(k)] -= hi - lo) == 0)
                isend_upload_piece(
                    early, grads, 0, p, WireFormat{}, chunk, p.owner, job,
                    fmt::format("sending gradients to rank {} (overlapped)", p.owner));
            }
          };
        }
        stats = amp.gradients(*model, data, order.data() + offset, count, config.micro_batch, flat,
                              ready);
        upload = flat.grads();
      } else {
        // params: `local_steps` optimizer steps over consecutive parts of the slice.
        const std::vector<int64_t> parts =
            largest_remainder(std::vector<double>(static_cast<size_t>(local_steps), 1.0), count, 0);
        int64_t at = offset;
        for (int64_t s = 0; s < local_steps; ++s) {
          const int64_t part = parts[static_cast<size_t>(s)];
          if (part == 0)
            continue;
          ComputeStats p =
              amp.gradients(*model, data, order.data() + at, part, config.micro_batch, flat);
          flat.grads().mul_(1.0 / static_cast<double>(part));
          torch::Tensor params = flat.params();
          local_optimizer->step(params, flat.grads(),
                                learning_rate(*local_schedule, global_step + s));
          stats.loss_sum += p.loss_sum;
          stats.correct += p.correct;
          stats.samples += p.samples;
          at += part;
        }
        upload = flat.params();
      }
      // On the device that computed it: the wire dtype's conversion runs there too.
      torch::Tensor wire_upload =
          wire.dtype == torch::kFloat32 ? upload : upload.to(wire.dtype).contiguous();
      if (!host)
        torch::cuda::synchronize(); // compute time is the GPU's, not just the launches'
      const double compute = seconds_since(start);
      timeline.add(Span::kCompute, start_us, wall_microseconds(), global_step + 1);
      ScopedSpan send_span(timeline, Span::kSend, global_step + 1);
      if (sample_log) {
        for (int64_t i = 0; i < count; ++i)
          sample_log << epoch << ' ' << global_step << ' ' << attempt << ' '
                     << order[static_cast<size_t>(offset + i)] << '\n';
        sample_log.flush(); // what a trainer killed later did use must be on disk
      }
      // A SIGTERM/SIGUSR1 here is passed on to rank 0, which decides when the job stops.
      const GpuSample gpu_now = watch_gpu ? sample_gpu(device.index()) : GpuSample{};
      double out_stats[kStatsLength] = {stats.loss_sum,
                                        static_cast<double>(stats.correct),
                                        static_cast<double>(stats.samples),
                                        compute,
                                        static_cast<double>(stop_signal()),
                                        static_cast<double>(amp.micro_batch(config.micro_batch)),
                                        gpu_now.valid ? gpu_now.utilization : -1,
                                        gpu_now.valid ? gpu_now.memory_used : -1,
                                        gpu_now.valid ? gpu_now.temperature : -1,
                                        gpu_now.valid ? gpu_now.power : -1};
      flatten_buffers(*model, buffers.data());
      if (config.fault_half_send_rank == world_rank && rounds_worked == 3 && host) {
        // Testing hook (--fault-half-send-rank): the shard servers get this round's gradient and
        // step, rank 0 gets nothing and never completes the round; a checkpoint must then hold
        // the servers' shards as they were before that step.
        RequestSet half;
        for (const Piece &p : layout.pieces)
          if (p.owner != 0)
            isend_upload_piece(half, wire_upload.data_ptr(), 0, p, wire, chunk, p.owner, job,
                               "sending gradients to the shard servers only");
        half.wait_all(config.straggler_timeout);
        log_warn("--fault-half-send-rank: sent round {} to the shard servers only; dying (SIGKILL)",
                 global_step + 1);
        std::raise(SIGKILL);
      }
      RequestSet set;
      MPI_Request r;
      CHECK_MPI(MPI_Isend(out_stats, kStatsLength, MPI_DOUBLE, 0, kTagStats, job, &r));
      set.add(r, 0, "sending round statistics");
      const std::string what = params_mode ? "sending parameters" : "sending gradients";
      if (host) {
        if (!overlap) // with --overlap they are on their way already
          for (const Piece &p : layout.pieces)
            isend_upload_piece(set, wire_upload.data_ptr(), 0, p, wire, chunk, p.owner, job, what);
      } else {
        // One device-to-host copy per piece into pinned memory, each piece sent as soon as it is
        // there: the copy of piece k+1 overlaps the network transfer of piece k.
        for (const Piece &p : layout.pieces) {
          upload_host.narrow(0, p.begin, p.length).copy_(wire_upload.narrow(0, p.begin, p.length));
          isend_upload_piece(set, upload_host.data_ptr(), 0, p, wire, chunk, p.owner, job, what);
        }
      }
      isend_chunks(set, buffers.data(), nbuf, chunk, 0, kTagBuffers, job, "sending buffers");
      early.wait_all(config.straggler_timeout);
      set.wait_all(config.straggler_timeout);
    }
    stopped = !receive_parameters("after a round");
  }
  inbox.cancel(); // still posted when the job ended while parameters were due
  if (sample_log)
    sample_log.close();
  CHECK_MPI(MPI_Comm_free(&job));
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Aggregator side (rank 0)
// ---------------------------------------------------------------------------------------------
struct Trainer {
  int world_rank = 0, job_rank = 0;
  TrainerReport report;
  double speed = 0; // smoothed samples/s, from the probe, then from rounds
  int64_t samples = 0;
  double compute_seconds = 0, wait_seconds = 0;
  int64_t last_round = 0;  // the last round it delivered (0 = none yet)
  int64_t micro_batch = 0; // what it runs: less than --micro-batch after running out of memory
  bool lost = false;       // dropped by --on-trainer-loss continue
  GpuSample gpu;           // its GPU in the last round (NVML), when it has one
};

// The trainer with this job rank (plans name trainers by job rank; with --aggregators A the
// trainers' job ranks start at A).
const Trainer &trainer_at(const std::vector<Trainer> &trainers, int job_rank) {
  for (const Trainer &t : trainers)
    if (t.job_rank == job_rank)
      return t;
  throw std::logic_error(fmt::format("no trainer has job rank {}", job_rank));
}

std::string name_of(const Trainer &t) {
  return fmt::format("rank {} ({})", t.world_rank, t.report.host);
}

// Micro-batches a round gives this trainer in `plan` (0 when it is not in it).
int64_t share_in(const Plan &plan, int job_rank) {
  for (size_t p = 0; p < plan.ranks.size(); ++p)
    if (plan.ranks[p] == job_rank)
      return plan.micro_batches[p];
  return 0;
}

std::string plan_text(const Plan &plan, const std::vector<Trainer> &trainers, int64_t m) {
  std::string text;
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    const Trainer &t = trainer_at(trainers, plan.ranks[i]);
    text += fmt::format("{}rank {} ({}) {} x {}", i ? ", " : "", t.world_rank, t.report.host,
                        plan.micro_batches[i], m);
  }
  return text + fmt::format("; estimated round {:.3f} s", plan.estimated_round_seconds);
}

TrainerSpeed speed_of(const Trainer &t, int64_t flat_bytes) {
  // Transfer estimate: gradients up and parameters down over a link of ~1 GB/s until the
  // bandwidth is measured (the GPU-path issue adds the measurement).
  return {t.job_rank, t.report.host, t.speed, 2.0 * static_cast<double>(flat_bytes) / 1e9};
}

// A plan over the trainers still in the job. --balance static shares follow their trainers, so a
// lost trainer's share goes away with it.
Plan plan_for(const std::vector<Trainer> &trainers, const TrainConfig &config, int64_t flat_bytes) {
  BalancePolicy policy = parse_balance(config.balance);
  std::vector<TrainerSpeed> speeds;
  std::vector<double> shares;
  for (size_t j = 0; j < trainers.size(); ++j) {
    if (trainers[j].lost)
      continue;
    speeds.push_back(speed_of(trainers[j], flat_bytes));
    if (policy.kind == BalancePolicy::Kind::Static && j < policy.static_shares.size())
      shares.push_back(policy.static_shares[j]);
  }
  if (policy.kind == BalancePolicy::Kind::Static && speeds.size() < trainers.size())
    policy.static_shares = shares;
  return make_plan(speeds, config.global_batch / config.micro_batch, config.micro_batch, policy);
}

// The estimated round time of an existing plan under the trainers' current speeds.
double current_estimate(const Plan &plan, const std::vector<Trainer> &trainers, int64_t flat_bytes,
                        int64_t micro_batch) {
  std::vector<TrainerSpeed> in_plan;
  for (int rank : plan.ranks)
    in_plan.push_back(speed_of(trainer_at(trainers, rank), flat_bytes));
  return estimated_round_seconds(in_plan, plan.micro_batches, micro_batch);
}

// --aggregator-device: where rank 0 averages and steps. CUDA needs three things: a build with
// the kernel, a LibTorch with CUDA (the master parameters and the optimizer live in it), and a
// visible GPU. auto takes CUDA when all three are there; cuda without them is an error that says
// which is missing.
struct AggregatorPlace {
  ReduceDevice reduce = ReduceDevice::kCpu;
  torch::Device device{torch::kCPU};
};
AggregatorPlace choose_aggregator_device(const std::string &requested, int local_rank) {
  if (requested == "cpu")
    return {};
  std::string why;
  const int gpus = cuda_devices(&why);
  if (gpus > 0 && !torch::cuda::is_available())
    why = "this LibTorch has no CUDA (build with a CUDA LibTorch on CMAKE_PREFIX_PATH)";
  if (gpus > 0 && torch::cuda::is_available())
    return {ReduceDevice::kCuda,
            torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % gpus))};
  if (requested == "cuda")
    throw UserError(fmt::format("--aggregator-device cuda: {}", why));
  return {};
}

TrainSummary run_aggregator(const TrainConfig &config, int world_size, int local_rank) {
  // Bad data and output paths are found before anyone waits for reports (the trainers read the
  // same files).
  const DatasetMeta meta = read_dataset_meta(config.data);
  prepare_outputs(config);
  // --- collect reports until the join deadline ---
  // Trainers are world ranks A..W-1 (A = --aggregators; ranks 1..A-1 are shard servers); report
  // i comes from world rank first_trainer + i.
  const int first_trainer = config.aggregators;
  std::vector<std::vector<uint8_t>> raw(static_cast<size_t>(world_size - first_trainer),
                                        std::vector<uint8_t>(kReportMessageBytes + 64));
  std::vector<MPI_Request> requests(raw.size());
  std::vector<int> received(raw.size(), -1);
  for (size_t i = 0; i < raw.size(); ++i)
    CHECK_MPI(MPI_Irecv(raw[i].data(), static_cast<int>(raw[i].size()), MPI_BYTE,
                        static_cast<int>(i) + first_trainer, kTagReport, MPI_COMM_WORLD,
                        &requests[i]));
  const auto join_start = Clock::now();
  while (seconds_since(join_start) < config.join_timeout &&
         std::count(received.begin(), received.end(), -1) > 0) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (received[i] >= 0)
        continue;
      int flag = 0;
      MPI_Status status;
      CHECK_MPI(MPI_Test(&requests[i], &flag, &status));
      if (flag)
        CHECK_MPI(MPI_Get_count(&status, MPI_BYTE, &received[i]));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  // --- decode, admit, tell every trainer ---
  std::vector<TrainerReport> valid;
  std::vector<AdmissionVerdict> verdicts(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    verdicts[i].rank = static_cast<int>(i) + first_trainer;
    if (received[i] < 0) {
      verdicts[i].reason = fmt::format("no report within --join-timeout {} s", config.join_timeout);
      continue;
    }
    try {
      raw[i].resize(static_cast<size_t>(received[i]));
      TrainerReport r = decode_report(raw[i]);
      r.rank = static_cast<int>(i) + first_trainer; // the sender is who MPI says it is
      valid.push_back(r);
    } catch (const UserError &e) {
      verdicts[i].reason = e.what();
    }
  }
  AdmissionPolicy policy{config.require_gpu, config.min_relative_speed, config.require_bf16};
  for (const AdmissionVerdict &v : decide_admission(valid, policy))
    verdicts[static_cast<size_t>(v.rank - first_trainer)] = v;

  log_info("cluster: {} trainers reported of {}", valid.size(), raw.size());
  log_info("  {:>4}  {:<16} {:<28} {:>12} {:>10}  {}", "rank", "host", "device", "probe smp/s",
           "mem GiB", "verdict");
  std::vector<Trainer> trainers;
  std::vector<nlohmann::json> report_json; // every report, with its verdict; shares added later
  for (size_t i = 0; i < raw.size(); ++i) {
    const AdmissionVerdict &v = verdicts[i];
    auto found = std::find_if(valid.begin(), valid.end(),
                              [&](const TrainerReport &r) { return r.rank == v.rank; });
    if (found != valid.end()) {
      log_info("  {:>4}  {:<16} {:<28} {:>12.0f} {:>10.1f}  {}", v.rank, found->host, found->device,
               found->probe_samples_per_sec, static_cast<double>(found->mem_available) / (1 << 30),
               v.admitted ? "admitted" : "rejected: " + v.reason);
      report_json.push_back(nlohmann::json{{"rank", v.rank},
                                           {"host", found->host},
                                           {"pid", found->pid},
                                           {"cpu_model", found->cpu_model},
                                           {"usable_cores", found->usable_cores},
                                           {"device", found->device},
                                           {"blas", found->blas},
                                           {"probe_samples_per_sec", found->probe_samples_per_sec},
                                           {"admitted", v.admitted},
                                           {"reason", v.reason}});
    } else {
      log_info("  {:>4}  {:<16} {:<28} {:>12} {:>10}  rejected: {}", v.rank, "?", "?", "-", "-",
               v.reason);
    }
    if (!v.admitted)
      log_warn("rank {} rejected: {}", v.rank, v.reason);
    if (v.admitted) {
      Trainer t;
      t.world_rank = v.rank;
      t.job_rank = static_cast<int>(trainers.size()) + first_trainer; // after rank 0 and servers
      t.report = *found;
      t.speed = found->probe_samples_per_sec;
      t.micro_batch = config.micro_batch;
      trainers.push_back(t);
    }
  }
  std::vector<std::array<char, kVerdictBytes>> verdict_text(raw.size());
  {
    RequestSet set;
    for (size_t i = 0; i < raw.size(); ++i) {
      std::string text = (verdicts[i].admitted ? "1" : "0") + verdicts[i].reason;
      verdict_text[i].fill(0);
      std::copy_n(text.begin(), std::min(text.size(), size_t{kVerdictBytes - 1}),
                  verdict_text[i].begin());
      MPI_Request r;
      const int to = static_cast<int>(i) + first_trainer;
      CHECK_MPI(MPI_Isend(verdict_text[i].data(), kVerdictBytes, MPI_BYTE, to, kTagVerdict,
                          MPI_COMM_WORLD, &r));
      set.add(r, to, "sending the admission verdict");
    }
    set.wait_all(config.join_timeout);
  }
  MPI_Comm job;
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, 0, 0, &job));
  CHECK_MPI(MPI_Comm_set_errhandler(job, MPI_ERRORS_RETURN));
  for (size_t i = 0; i < raw.size(); ++i)
    if (received[i] < 0)
      MPI_Cancel(&requests[i]);
  if (trainers.empty())
    throw UserError("no trainer was admitted (see the table above); nothing to train with");

  // --- the master model, optimizer, plan ---
  const ModelSpec spec = spec_of(config, meta);
  torch::set_num_threads(config.threads > 0 ? config.threads : usable_cores());
  torch::manual_seed(config.seed);
  const AggregatorPlace place = choose_aggregator_device(config.aggregator_device, local_rank);
  auto model = make_model(spec);
  model->to(place.device); // the master parameters and the optimizer state live here
  FlatParameters flat(*model);
  const Normalization normalization{meta.mean, meta.std};
  std::unique_ptr<Dataset> test = open_test_data(config, meta, normalization);
  const int64_t n = config.limit_train_samples > 0
                        ? std::min(config.limit_train_samples, meta.count)
                        : meta.count;
  const int64_t G = config.global_batch, m = config.micro_batch;
  const int64_t steps_per_epoch = (n + G - 1) / G;
  Optimizer optimizer(optimizer_options(config), flat.numel(), place.device);
  const LrSchedule schedule = lr_schedule(config, steps_per_epoch);
  const int64_t chunk = chunk_elements(config);
  // With --aggregators A rank 0 reduces and steps shard 0 only; ranks 1..A-1 the others.
  const ShardLayout layout = shard_layout_checked(flat.numel(), config);
  const std::vector<Piece> my_pieces = layout.pieces_of(0);
  const int64_t my_length = layout.shard_length(0);
  const int servers = config.aggregators - 1;
  const int64_t nbuf = buffer_elements(*model);

  TrainSummary summary;
  summary.aggregators = config.aggregators;
  summary.world_size = world_size;
  summary.model = spec.name;
  summary.epochs = config.epochs;
  TrainingPosition position;
  // --resume: rank 0 alone reads the checkpoint; the trainers get the parameters as at any start,
  // and each round's command says where in which epoch it is.
  if (auto resume = find_resume_point(config, spec))
    position = restore_training(*resume, *model, flat, optimizer, summary);
  const TrainingPosition resumed = position;
  CheckpointSource source{&config,    spec,      normalization, model.get(), &flat,
                          &optimizer, &schedule, world_size,    {}};

  Plan plan = plan_for(trainers, config, flat.numel() * 4);
  // Checkpoints store every report with the trainer's share in the current plan.
  Timeline timeline(!config.timeline.empty());

  // --- shard servers (--aggregators A > 1): ranks 1..A-1 ---
  // Rank 0 keeps full-size parameters and optimizer state, but between gathers only its own
  // shard of them is current. A gather brings the others' shards here: before every checkpoint,
  // every evaluation and the end.
  bool shards_gathered = true;
  const std::vector<std::pair<std::string, torch::Tensor>> optimizer_state = optimizer.state();
  // Sends (gather = false) or receives (true) every server's shard of the parameters and of each
  // optimizer state tensor, as the setup and kGather messages say (protocol.h).
  auto move_shards = [&](bool gather, const char *what) {
    std::vector<torch::Tensor> tensors{flat.params()};
    for (const auto &named : optimizer_state)
      tensors.push_back(named.second);
    std::vector<std::vector<float>> host(static_cast<size_t>(servers) * tensors.size());
    RequestSet set;
    for (int j = 1; j <= servers; ++j)
      for (size_t s = 0; s < tensors.size(); ++s) {
        const int64_t begin = layout.shard_begin[static_cast<size_t>(j)];
        const int64_t length = layout.shard_length(j);
        std::vector<float> &h = host[static_cast<size_t>(j - 1) * tensors.size() + s];
        const int tag = kTagShardState + static_cast<int>(s);
        const std::string text = fmt::format("{} rank {} (shard server)", what, j);
        if (gather) {
          h.resize(static_cast<size_t>(length));
          irecv_chunks(set, h.data(), length, chunk, j, tag, job, text);
        } else {
          torch::Tensor part = tensors[s].narrow(0, begin, length).to(torch::kCPU).contiguous();
          h.assign(part.data_ptr<float>(), part.data_ptr<float>() + length);
          isend_chunks(set, h.data(), length, chunk, j, tag, job, text);
        }
      }
    set.wait_all(config.straggler_timeout);
    if (!gather)
      return;
    torch::NoGradGuard no_grad;
    for (int j = 1; j <= servers; ++j)
      for (size_t s = 0; s < tensors.size(); ++s) {
        std::vector<float> &h = host[static_cast<size_t>(j - 1) * tensors.size() + s];
        tensors[s]
            .narrow(0, layout.shard_begin[static_cast<size_t>(j)], layout.shard_length(j))
            .copy_(torch::from_blob(h.data(), {layout.shard_length(j)}, torch::kFloat32));
      }
  };
  // Sends every shard server {kind, value, 0, ...} (protocol.h) and waits up to `timeout`.
  auto command_servers = [&](int64_t kind, int64_t value, const char *what, double timeout) {
    std::vector<std::vector<int64_t>> sent(
        static_cast<size_t>(servers),
        std::vector<int64_t>(static_cast<size_t>(kShardCommandLength(trainers.size())), 0));
    RequestSet set;
    for (int j = 1; j <= servers; ++j) {
      std::vector<int64_t> &c = sent[static_cast<size_t>(j - 1)];
      c[0] = kind;
      c[1] = value;
      MPI_Request r;
      CHECK_MPI(MPI_Isend(c.data(), static_cast<int>(c.size()), MPI_INT64_T, j, kTagShardCommand,
                          job, &r));
      set.add(r, j, what);
    }
    try {
      set.wait_all(timeout);
    } catch (const PeerTimeout &) {
      set.cancel_pending();
      throw;
    }
  };
  auto gather_shards = [&] {
    if (shards_gathered)
      return;
    // The servers' steps past rank 0's (a round rank 0 abandoned) are undone before they send.
    command_servers(kGather, optimizer.steps_taken(), "asking a shard server for its shard",
                    config.straggler_timeout);
    move_shards(true, "the shard of");
    shards_gathered = true;
  };
  auto stop_servers = [&] { // the job is ending anyway: a server that does not listen is killed
    try {
      command_servers(kStop, 0, "telling a shard server to stop",
                      std::min(5.0, config.straggler_timeout));
    } catch (const PeerTimeout &) {
    }
  };
  if (servers > 0) {
    // Setup: who the trainers are, how many steps the optimizer has taken; then the shards.
    std::vector<std::vector<int64_t>> setup(static_cast<size_t>(servers));
    RequestSet set;
    for (int j = 1; j <= servers; ++j) {
      std::vector<int64_t> &m = setup[static_cast<size_t>(j - 1)];
      m.assign(static_cast<size_t>(kSetupLength(world_size)), 0);
      m[0] = static_cast<int64_t>(trainers.size());
      m[1] = optimizer.steps_taken();
      for (size_t i = 0; i < trainers.size(); ++i) {
        m[2 + i] = trainers[i].job_rank;
        m[2 + trainers.size() + i] = trainers[i].world_rank;
      }
      MPI_Request r;
      CHECK_MPI(
          MPI_Isend(m.data(), static_cast<int>(m.size()), MPI_INT64_T, j, kTagShardSetup, job, &r));
      set.add(r, j, "sending a shard server its setup");
    }
    set.wait_all(config.straggler_timeout);
    move_shards(false, "sending its shard to");
    log_info("aggregators: {} ranks; rank 0 owns elements [0, {}) of {}, {} the rest; {} "
             "pieces of at most {} elements",
             config.aggregators, my_length, flat.numel(),
             servers == 1 ? std::string("rank 1") : fmt::format("ranks 1-{}", servers),
             layout.pieces.size(), chunk);
  }

  auto save = [&](const std::string &tag) {
    ScopedSpan span(timeline, Span::kCheckpoint);
    gather_shards();
    source.reports.clear();
    for (nlohmann::json r : report_json) {
      r["micro_batches"] = 0;
      for (const Trainer &t : trainers)
        if (t.world_rank == r["rank"].get<int>())
          r["micro_batches"] = share_in(plan, t.job_rank);
      source.reports.push_back(r.dump());
    }
    return save_checkpoint(source, position, summary.history, tag);
  };
  for (const std::string &note : plan.notes)
    log_info("plan: {}", note);
  summary.plan_history.push_back(plan_text(plan, trainers, m));
  log_info("plan: {}", summary.plan_history.back());

  // " while waiting for rank 2 (node7, last completed round 16), ...": who a wait is stuck on.
  auto late_text = [&](const std::vector<int> &world_ranks, bool leading = true) {
    std::string text;
    for (int r : world_ranks)
      for (const Trainer &t : trainers)
        if (t.world_rank == r)
          text += fmt::format("{}rank {} ({}, last completed round {})", text.empty() ? "" : ", ",
                              r, t.report.host, t.last_round);
    if (text.empty())
      return std::string();
    return leading ? " while waiting for " + text : text;
  };
  // --on-trainer-loss continue: the job goes on without these trainers, on a new plan.
  auto drop_trainers = [&](const std::vector<int> &world_ranks, const std::string &why) {
    for (int r : world_ranks)
      for (Trainer &t : trainers)
        if (t.world_rank == r && !t.lost) {
          t.lost = true;
          const std::string what =
              fmt::format("{}, last completed round {}: {}", name_of(t), t.last_round, why);
          log_error("lost {}; going on without it (--on-trainer-loss continue)", what);
          summary.lost_trainers.push_back(what);
        }
    if (std::all_of(trainers.begin(), trainers.end(), [](const Trainer &t) { return t.lost; })) {
      const std::string path = save("abort");
      throw PeerTimeout(world_ranks.empty() ? 0 : world_ranks.front(),
                        fmt::format("every trainer is lost (the last {}); wrote {}", why, path));
    }
    plan = plan_for(trainers, config, flat.numel() * 4);
    summary.plan_history.push_back(plan_text(plan, trainers, m));
    log_info("re-plan without the lost: {}", summary.plan_history.back());
  };
  // Tells every trainer but `except` (world ranks) to stop, waiting a few seconds at most: the
  // job is ending anyway, and a trainer that does not listen is killed with it.
  auto stop_trainers = [&](const std::vector<int> &except) {
    std::vector<std::array<int64_t, kCommandLength>> stop(trainers.size());
    RequestSet set;
    for (size_t j = 0; j < trainers.size(); ++j) {
      const Trainer &t = trainers[j];
      if (t.lost || std::count(except.begin(), except.end(), t.world_rank) > 0)
        continue;
      stop[j] = {kStop, 0, 0, 0, 0, 0, 0};
      MPI_Request r;
      CHECK_MPI(
          MPI_Isend(stop[j].data(), kCommandLength, MPI_INT64_T, t.job_rank, kTagCommand, job, &r));
      set.add(r, t.world_rank, "telling it to stop");
    }
    try {
      set.wait_all(std::min(5.0, config.straggler_timeout));
    } catch (const PeerTimeout &) {
      set.cancel_pending();
    }
    stop_servers();
  };
  auto run_start = Clock::now(); // reset when the first round starts
  MetricsFile metrics = config.metrics.empty() ? MetricsFile() : MetricsFile(config.metrics);
  auto write_prometheus = [&](double loss, int64_t epoch) {
    if (config.prometheus.empty())
      return;
    PrometheusSnapshot p;
    p.samples_total = position.samples_seen;
    p.samples_per_second = static_cast<double>(position.samples_seen - resumed.samples_seen) /
                           std::max(1e-9, seconds_since(run_start));
    p.rounds_total = position.global_step;
    p.epoch = epoch;
    p.loss = loss;
    if (!summary.history.empty())
      p.test_accuracy = summary.history.back().test_accuracy;
    for (const Trainer &t : trainers) {
      if (t.lost)
        continue;
      p.trainers.push_back(
          {t.world_rank, t.report.host, share_in(plan, t.job_rank), t.speed, t.samples, t.gpu});
    }
    write_prometheus_file(config.prometheus, p);
  };
  // --timeline: every trainer sends its spans after the stop command that asked for them.
  auto gather_and_write_timeline = [&](Timeline &all) {
    std::vector<std::string> names(static_cast<size_t>(world_size), "not admitted");
    names[0] = fmt::format("rank 0 ({}) aggregator", process_identity().host);
    for (int j = 1; j <= servers; ++j)
      names[static_cast<size_t>(j)] = fmt::format("rank {} shard server (no spans)", j);
    for (const Trainer &t : trainers) {
      if (t.lost) {
        names[static_cast<size_t>(t.world_rank)] = name_of(t) + " lost";
        continue;
      }
      names[static_cast<size_t>(t.world_rank)] = name_of(t) + " trainer";
      int64_t length = 0;
      RequestSet set;
      MPI_Request r;
      CHECK_MPI(MPI_Irecv(&length, 1, MPI_INT64_T, t.job_rank, kTagTimeline, job, &r));
      set.add(r, t.world_rank, fmt::format("the timeline's length from {}", name_of(t)));
      set.wait_all(config.straggler_timeout);
      std::vector<double> spans(static_cast<size_t>(length));
      RequestSet data;
      irecv_chunks(data, spans.data(), length, chunk, MPI_DOUBLE, 8, t.job_rank, kTagTimeline, job,
                   fmt::format("the timeline from {}", name_of(t)));
      data.wait_all(config.straggler_timeout);
      all.add_encoded(t.world_rank, spans);
    }
    all.write(config.timeline, names);
    log_info("timeline: {} spans of {} ranks in {}", all.size(), world_size, config.timeline);
  };
  const double stall_warning =
      config.stall_warning > 0 ? config.stall_warning : config.straggler_timeout / 2;

  std::vector<float> buffers(static_cast<size_t>(nbuf));
  // The broadcast leaves from host memory: the master parameters themselves on the CPU, a pinned
  // copy of them when they live on the GPU.
  const bool master_on_gpu = place.device.is_cuda();
  torch::Tensor params_out =
      master_on_gpu ? host_buffer(flat.numel(), torch::kFloat32, true) : flat.params();
  auto send_parameters = [&]() {
    flatten_buffers(*model, buffers.data());
    if (master_on_gpu)
      params_out.copy_(flat.params());
    RequestSet set;
    for (const Trainer &t : trainers) {
      if (t.lost)
        continue;
      for (const Piece &p : my_pieces)
        isend_chunks(set, params_out.data_ptr<float>() + p.begin, p.length, chunk, t.job_rank,
                     kTagParams, job, fmt::format("sending parameters to {}", name_of(t)));
      isend_chunks(set, buffers.data(), nbuf, chunk, t.job_rank, kTagParamBuffers, job,
                   fmt::format("sending buffers to {}", name_of(t)));
    }
    try {
      set.wait_all(config.straggler_timeout);
    } catch (const PeerTimeout &) {
      if (config.on_trainer_loss != "continue")
        throw;
      const std::vector<int> late = set.pending_peers();
      set.cancel_pending();
      drop_trainers(late, fmt::format("did not take parameters within --straggler-timeout {} s",
                                      config.straggler_timeout));
    }
  };
  auto send_command = [&](RequestSet &set, std::vector<std::array<int64_t, kCommandLength>> &cmds) {
    for (size_t j = 0; j < trainers.size(); ++j) {
      if (trainers[j].lost)
        continue;
      MPI_Request r;
      CHECK_MPI(MPI_Isend(cmds[j].data(), kCommandLength, MPI_INT64_T, trainers[j].job_rank,
                          kTagCommand, job, &r));
      set.add(r, trainers[j].world_rank,
              fmt::format("sending the round's command to {}", name_of(trainers[j])));
    }
  };

  const WireFormat wire = wire_format(config.wire_dtype);
  const bool params_mode = config.sync == "params";
  const int64_t local_steps = params_mode ? config.local_steps : 1;
  const int64_t round_samples = G * local_steps; // samples of the epoch's order per round
  // What trainers upload (gradient sums, or their parameters in params mode, in the wire dtype)
  // lands in the reducer's buffers, one per trainer, and is reduced there chunk by chunk. Only
  // shard 0 ([0, my_length), all of it without --aggregators) comes here.
  ChunkReducer reducer(place.reduce, trainers.size(), my_length, wire.reduce_dtype, config.threads,
                       place.device.is_cuda() ? place.device.index() : 0);
  log_info("aggregator: master parameters and optimizer on {}; reduce on {}", place.device.str(),
           reducer.description());
  summary.aggregator_device = place.device.str();
  summary.amp = config.amp;
  std::vector<std::vector<float>> buffers_in(trainers.size(),
                                             std::vector<float>(static_cast<size_t>(nbuf)));
  std::vector<std::array<double, kStatsLength>> stats_in(trainers.size());
  std::vector<std::array<int64_t, kCommandLength>> commands(trainers.size());
  std::vector<std::vector<int64_t>> server_commands(static_cast<size_t>(servers));
  std::vector<std::array<double, kShardAckLength>> server_acks(static_cast<size_t>(servers));

  send_parameters();
  run_start = Clock::now();
  auto last_progress = Clock::now();
  int64_t rounds_since_plan = 0;
  int pending_signal = 0; // SIGTERM/SIGUSR1 seen here or reported by a trainer
  for (int64_t epoch = resumed.epoch; epoch < config.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    // A resumed epoch goes on from the saved position; its record covers this part only.
    position = start_of_epoch(position, resumed, epoch, n);
    const int64_t first = position.epoch_position;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = first; start < n; start += round_samples) {
      if (config.fault_kill_rank == 0 && position.round == 2) {
        log_warn("--fault-kill-rank: rank 0 dying (SIGKILL) before round {}",
                 position.global_step + 1);
        std::raise(SIGKILL);
      }
      const auto round_start = Clock::now();
      const int64_t count = std::min(round_samples, n - start);
      const int64_t steps = (count + G - 1) / G; // optimizer steps this round (params: local)
      const int64_t round_number = position.global_step + 1; // as logs and trainers count it
      std::vector<int> working; // indices into trainers of those with samples this round
      double receive_seconds = 0, reduce_seconds = 0; // for --metrics
      // A round is redone (attempt 1, 2, ...) after --on-trainer-loss continue dropped a trainer
      // in it: the same samples, re-planned over the survivors, from the same parameters.
      for (int attempt = 0;; ++attempt) {
        const RoundShard shard = shard_round(plan.micro_batches, m * local_steps, start, count);
        working.clear();
        for (size_t j = 0; j < trainers.size(); ++j)
          commands[j] = {kSkip, epoch, 0, 0, position.global_step, steps, attempt};
        for (size_t p = 0; p < plan.ranks.size(); ++p) {
          if (shard.counts[p] == 0)
            continue;
          const size_t j = static_cast<size_t>(plan.ranks[p] - first_trainer);
          commands[j] = {kRound, epoch,  shard.offsets[p], shard.counts[p], position.global_step,
                         steps,  attempt};
          working.push_back(static_cast<int>(j));
        }
        // Commands and uploads wait together: a trainer that is gone shows up in one deadline.
        RequestSet set;
        send_command(set, commands);
        // The shard servers: who works this round and the learning rate of the step; each
        // answers when it has stepped its shard, so a round is complete only when all have.
        for (int j = 1; j <= servers; ++j) {
          std::vector<int64_t> &c = server_commands[static_cast<size_t>(j - 1)];
          c.assign(static_cast<size_t>(kShardCommandLength(trainers.size())), 0);
          c[0] = kRound;
          c[1] = position.global_step;
          c[2] = count;
          c[3] = double_bits(learning_rate(schedule, position.global_step));
          for (int w : working)
            c[4 + static_cast<size_t>(w)] = 1;
          MPI_Request r;
          CHECK_MPI(MPI_Isend(c.data(), static_cast<int>(c.size()), MPI_INT64_T, j,
                              kTagShardCommand, job, &r));
          set.add(r, j, fmt::format("sending round {} to rank {} (shard server)", round_number, j));
          CHECK_MPI(MPI_Irecv(server_acks[static_cast<size_t>(j - 1)].data(), kShardAckLength,
                              MPI_DOUBLE, j, kTagShardAck, job, &r));
          set.add(r, j,
                  fmt::format("rank {} (shard server) stepping its shard in round {}", j,
                              round_number));
        }
        std::vector<size_t> first_chunk(trainers.size()), stats_index(trainers.size());
        for (int j : working) {
          const Trainer &t = trainers[static_cast<size_t>(j)];
          MPI_Request r;
          CHECK_MPI(MPI_Irecv(stats_in[static_cast<size_t>(j)].data(), kStatsLength, MPI_DOUBLE,
                              t.job_rank, kTagStats, job, &r));
          stats_index[static_cast<size_t>(j)] = set.size();
          set.add(r, t.world_rank,
                  fmt::format("round {} statistics from {}", round_number, name_of(t)));
          // This rank's pieces only (all of them without --aggregators): piece q of them is
          // request first_chunk[j] + q.
          first_chunk[static_cast<size_t>(j)] = set.size();
          for (const Piece &p : my_pieces)
            irecv_upload_piece(set, reducer.receive_buffer(static_cast<size_t>(j)), 0, p, wire,
                               chunk, t.job_rank, job,
                               fmt::format("round {} {} from {}", round_number,
                                           params_mode ? "parameters" : "gradients", name_of(t)));
          irecv_chunks(set, buffers_in[static_cast<size_t>(j)].data(), nbuf, chunk, t.job_rank,
                       kTagBuffers, job,
                       fmt::format("round {} buffers from {}", round_number, name_of(t)));
        }
        // Reduce chunk c as soon as every working trainer's copy of it has arrived. gradient:
        // sum / S into the gradient; params: sample-weighted mean straight into the parameters,
        // whose weights need the sample counts that come with the statistics. Either way the
        // target is overwritten, never read, so a redone round starts clean.
        const auto chunks = static_cast<int64_t>(my_pieces.size());
        std::vector<bool> reduced(static_cast<size_t>(chunks), false);
        float *target =
            params_mode ? flat.params().data_ptr<float>() : flat.grads().data_ptr<float>();
        bool round_begun = false;
        // SIGTERM/SIGUSR1 during the round: it may finish within a short grace (the checkpoint
        // then holds it); past that it is abandoned, since the launcher kills the job soon after
        // its signal (Open MPI after about a second).
        constexpr double kAbandonGrace = 0.5;
        std::optional<Clock::time_point> signal_at;
        const auto wait_start = Clock::now();
        double receive_from = wall_microseconds(); // the receive span in progress
        bool stall_warned = false;
        auto reduce_ready = [&] {
          if (stop_signal() != 0) {
            if (!signal_at)
              signal_at = Clock::now();
            else if (seconds_since(*signal_at) > kAbandonGrace)
              throw RoundAbandoned(fmt::format("{} during round {}{}", signal_name(stop_signal()),
                                               round_number, late_text(set.pending_peers())));
          }
          // The stall inspector: name the trainers this round still waits for, well before the
          // straggler timeout ends the job (or drops them).
          if (!stall_warned && seconds_since(wait_start) > stall_warning) {
            stall_warned = true;
            log_warn("stall: round {} has waited {:.1f} s{}; the job gives up on them after "
                     "{:.0f} s (--straggler-timeout)",
                     round_number, seconds_since(wait_start), late_text(set.pending_peers()),
                     config.straggler_timeout);
          }
          if (params_mode)
            for (int j : working)
              if (!set.done(stats_index[static_cast<size_t>(j)]))
                return;
          for (int64_t c = 0; c < chunks; ++c) {
            if (reduced[static_cast<size_t>(c)])
              continue;
            bool ready = true;
            for (int j : working)
              ready =
                  ready && set.done(first_chunk[static_cast<size_t>(j)] + static_cast<size_t>(c));
            if (!ready)
              continue;
            if (!round_begun) {
              // Weights: 1/S for gradient sums; each trainer's share of the samples for params.
              std::vector<size_t> slots;
              std::vector<float> weights;
              for (int j : working) {
                slots.push_back(static_cast<size_t>(j));
                weights.push_back(params_mode
                                      ? static_cast<float>(stats_in[static_cast<size_t>(j)][2] /
                                                           static_cast<double>(count))
                                      : 1.0f / static_cast<float>(count));
              }
              reducer.begin_round(slots, weights);
              round_begun = true;
            }
            // The timeline's rank-0 row: receiving, then this reduce, then receiving again.
            const double reduce_from = wall_microseconds();
            timeline.add(Span::kReceive, receive_from, reduce_from, round_number);
            const Piece &piece = my_pieces[static_cast<size_t>(c)];
            reducer.reduce_chunk(piece.begin, piece.length, target);
            receive_from = wall_microseconds();
            timeline.add(Span::kReduce, reduce_from, receive_from, round_number);
            reduce_seconds += (receive_from - reduce_from) / 1e6;
            reduced[static_cast<size_t>(c)] = true;
          }
        };
        try {
          set.wait_all(config.straggler_timeout, reduce_ready);
          reducer.finish();
          timeline.add(Span::kReceive, receive_from, wall_microseconds(), round_number);
          receive_seconds = seconds_since(round_start) - reduce_seconds;
          break;
        } catch (const PeerTimeout &) {
          // Everyone else has delivered all of this round: no message of it is left in flight.
          const std::vector<int> late = set.pending_peers();
          if (config.on_trainer_loss != "continue") {
            // The caller names the peer and ends the job; first save the last complete round,
            // then stop the others (under mpirun --enable-recovery nothing else would).
            const std::string path = save("abort");
            log_error("lost {} in round {} (epoch {}); wrote {} (the last complete round)",
                      late_text(late, false), round_number, epoch + 1, path);
            stop_trainers(late);
            throw;
          }
          set.cancel_pending();
          reducer.finish();
          drop_trainers(late, fmt::format("no answer in round {} within --straggler-timeout {} s",
                                          round_number, config.straggler_timeout));
          // The survivors finished their part and wait for parameters: send them the unchanged
          // ones, then the round again with the new plan.
          send_parameters();
        } catch (const RoundAbandoned &e) {
          const std::string path = save("signal");
          throw RoundAbandoned(fmt::format("{}: abandoned it and wrote {} (the last complete "
                                           "round); continue with --resume auto",
                                           e.what(), path));
        }
      }
      // Buffers: sample-weighted mean of what the working trainers ran with.
      if (nbuf > 0) {
        std::vector<const float *> inputs;
        std::vector<float> w;
        for (int j : working) {
          inputs.push_back(buffers_in[static_cast<size_t>(j)].data());
          w.push_back(
              static_cast<float>(stats_in[static_cast<size_t>(j)][2] / static_cast<double>(count)));
        }
        weighted_sum_cpu(inputs, w, buffers.data(), nbuf);
        load_buffers(*model, buffers.data());
      }
      const auto step_start = Clock::now();
      if (!params_mode) {
        ScopedSpan span(timeline, Span::kStep, round_number);
        torch::Tensor params = flat.params();
        optimizer.step_range(params, flat.grads(), learning_rate(schedule, position.global_step), 0,
                             my_length);
        shards_gathered = servers == 0; // the servers' shards moved on too
      }
      const double step_seconds = seconds_since(step_start);
      const auto broadcast_start = Clock::now();
      {
        ScopedSpan span(timeline, Span::kBroadcast, round_number);
        send_parameters();
      }
      const double broadcast_seconds = seconds_since(broadcast_start);

      // Bookkeeping: statistics, smoothed speeds, progress, re-plan.
      const double round_seconds = seconds_since(round_start);
      for (int j : working) {
        Trainer &t = trainers[static_cast<size_t>(j)];
        const auto &s = stats_in[static_cast<size_t>(j)];
        loss_sum += s[0];
        correct += static_cast<int64_t>(s[1]);
        t.samples += static_cast<int64_t>(s[2]);
        t.compute_seconds += s[3];
        t.wait_seconds += std::max(0.0, round_seconds - s[3]);
        t.last_round = round_number;
        const auto micro_batch = static_cast<int64_t>(s[5]);
        if (micro_batch != t.micro_batch)
          log_warn("{} now runs micro-batches of {} samples (--micro-batch {}): it ran out of "
                   "device memory",
                   name_of(t), micro_batch, m);
        t.micro_batch = micro_batch;
        t.gpu.valid = s[kStatsGpu] >= 0;
        t.gpu.utilization = s[kStatsGpu];
        t.gpu.memory_used = s[kStatsGpu + 1];
        t.gpu.temperature = s[kStatsGpu + 2];
        t.gpu.power = s[kStatsGpu + 3];
        if (s[3] > 0)
          t.speed = 0.7 * t.speed + 0.3 * (s[2] / s[3]);
      }
      position.epoch_position = start + count;
      position.round += 1;
      position.global_step += steps;
      position.samples_seen += count;
      if (metrics.enabled()) {
        nlohmann::json per_trainer = nlohmann::json::array();
        double round_loss = 0;
        int64_t bytes = 0;
        for (int j : working) {
          const Trainer &t = trainers[static_cast<size_t>(j)];
          const auto &st = stats_in[static_cast<size_t>(j)];
          round_loss += st[0];
          bytes += my_length * static_cast<int64_t>(wire.bytes) + nbuf * 4; // its upload here
          nlohmann::json tj{{"rank", t.world_rank},
                            {"host", t.report.host},
                            {"samples", st[2]},
                            {"compute_seconds", st[3]},
                            {"wait_seconds", std::max(0.0, round_seconds - st[3])},
                            {"micro_batch", t.micro_batch}};
          if (t.gpu.valid)
            tj["gpu"] = {{"utilization", t.gpu.utilization},
                         {"memory_used_bytes", t.gpu.memory_used},
                         {"temperature_celsius", t.gpu.temperature},
                         {"power_watts", t.gpu.power}};
          per_trainer.push_back(tj);
        }
        nlohmann::json shares = nlohmann::json::object();
        for (size_t p = 0; p < plan.ranks.size(); ++p)
          shares[std::to_string(trainer_at(trainers, plan.ranks[p]).world_rank)] =
              plan.micro_batches[p];
        const int64_t bytes_received = bytes;
        for (const Trainer &t : trainers)
          if (!t.lost)
            bytes += (my_length + nbuf) * 4; // parameters and buffers back to it
        nlohmann::json shard_servers = nlohmann::json::array();
        for (int j = 1; j <= servers; ++j) {
          const auto &a = server_acks[static_cast<size_t>(j - 1)];
          shard_servers.push_back({{"rank", j},
                                   {"receive_seconds", a[0]},
                                   {"reduce_seconds", a[1]},
                                   {"step_seconds", a[2]},
                                   {"bytes_received", a[3]}});
        }
        metrics.write({{"type", "round"},
                       {"round", position.round},
                       {"step", position.global_step},
                       {"epoch", epoch + 1},
                       {"time", seconds_since(run_start)},
                       {"seconds", round_seconds},
                       {"samples", count},
                       {"samples_per_sec", static_cast<double>(count) / round_seconds},
                       {"loss", round_loss / static_cast<double>(count)},
                       {"lr", learning_rate(schedule, position.global_step - steps)},
                       {"shares", shares},
                       {"trainers", per_trainer},
                       {"aggregator",
                        {{"receive_seconds", receive_seconds},
                         {"reduce_seconds", reduce_seconds},
                         {"step_seconds", step_seconds},
                         {"broadcast_seconds", broadcast_seconds},
                         {"bytes_received", bytes_received}}},
                       {"shard_servers", shard_servers},
                       {"bytes", bytes}});
      }
      if (seconds_since(last_progress) >= config.progress_seconds) {
        last_progress = Clock::now();
        write_prometheus(loss_sum / static_cast<double>(position.epoch_position - first),
                         epoch + 1);
        const double rate = static_cast<double>(position.samples_seen - resumed.samples_seen) /
                            seconds_since(run_start);
        const double remaining =
            static_cast<double>(n * config.epochs - position.samples_seen) / rate;
        log_info("epoch {}/{} round {}/{} | {:.0f} samples/s | loss {:.4f} | ETA {}", epoch + 1,
                 config.epochs, position.round, (n + round_samples - 1) / round_samples, rate,
                 loss_sum / static_cast<double>(position.epoch_position),
                 format_duration(remaining));
      }
      if (config.rebalance_every > 0 && ++rounds_since_plan >= config.rebalance_every) {
        rounds_since_plan = 0;
        // A new plan is adopted only when it is estimated at least 5% faster than keeping the
        // current one: measured speeds are noisy, and shares that flip on noise help no one.
        Plan next = plan_for(trainers, config, flat.numel() * 4);
        const double keep = current_estimate(plan, trainers, flat.numel() * 4, m);
        if ((next.ranks != plan.ranks || next.micro_batches != plan.micro_batches) &&
            next.estimated_round_seconds < 0.95 * keep) {
          plan = next;
          summary.plan_history.push_back(plan_text(plan, trainers, m));
          log_info("re-plan after round {}: {}", position.global_step, summary.plan_history.back());
        }
      }
      if (config.checkpoint_every > 0 && position.global_step % config.checkpoint_every == 0 &&
          start + count < n)
        save("step");
      // SIGTERM/SIGUSR1 here or at a trainer (it says so in its statistics): the round is
      // complete, so checkpoint it and stop every trainer.
      for (int j : working)
        if (pending_signal == 0 && stats_in[static_cast<size_t>(j)][4] != 0)
          pending_signal = static_cast<int>(stats_in[static_cast<size_t>(j)][4]);
      if (pending_signal == 0)
        pending_signal = stop_signal();
      if (pending_signal != 0 && start + count < n) {
        summary.final_checkpoint = save("signal");
        summary.stopped_by_signal = pending_signal;
        break;
      }
    }
    if (summary.stopped_by_signal != 0)
      break;

    // Training time only: evaluation is not part of the epoch's seconds.
    {
      ScopedSpan span(timeline, Span::kEvaluate);
      gather_shards(); // evaluation needs every shard's parameters
      finish_epoch({epoch, n - first, loss_sum, correct, seconds_since(epoch_start)}, *model,
                   test.get(), config.epochs, summary);
    }
    metrics.write(epoch_metrics(summary.history.back()));
    write_prometheus(summary.history.back().train_loss, epoch + 1);
    // The per-epoch table (DESIGN §9): shares of the current plan and where the time went.
    log_info("  {:>4}  {:<16} {:>6} {:>10} {:>10} {:>9} {:>10}", "rank", "host", "share", "samples",
             "compute s", "wait s", "samples/s");
    for (const Trainer &t : trainers)
      log_info("  {:>4}  {:<16} {:>6} {:>10} {:>10.1f} {:>9.1f} {:>10.0f}{}", t.world_rank,
               t.report.host, share_in(plan, t.job_rank), t.samples, t.compute_seconds,
               t.wait_seconds, t.speed, t.lost ? "  lost" : "");
    position.epoch = epoch + 1;
    position.epoch_position = 0;
    position.round = 0;
    summary.final_checkpoint = save("epoch");
    if (pending_signal == 0)
      pending_signal = stop_signal();
    if (pending_signal != 0 && epoch + 1 < config.epochs) {
      summary.stopped_by_signal = pending_signal;
      break;
    }
  }

  {
    for (auto &c : commands)
      c = {kStop, timeline.enabled() ? 1 : 0, 0, 0, 0, 0, 0};
    RequestSet set;
    send_command(set, commands);
    set.wait_all(config.straggler_timeout);
    stop_servers();
  }
  if (timeline.enabled())
    gather_and_write_timeline(timeline);
  CHECK_MPI(MPI_Comm_free(&job));
  if (summary.stopped_by_signal != 0) {
    log_warn("{}: stopped at step {} (epoch {}), wrote {}; continue with --resume auto",
             signal_name(summary.stopped_by_signal), position.global_step, position.epoch + 1,
             summary.final_checkpoint);
    return summary;
  }

  for (const Trainer &t : trainers)
    summary.trainers.push_back({t.world_rank, t.report.host, share_in(plan, t.job_rank), t.samples,
                                t.compute_seconds, t.wait_seconds, t.micro_batch, t.lost});
  finish_run(config, position, summary);
  return summary;
}

} // namespace

TrainSummary run_distributed_training(const TrainConfig &config) {
  validate(config);
  const ProcessIdentity &id = process_identity();
  // Collective over the world, so every rank calls it before anything can diverge.
  const int local_rank = node_local_rank(MPI_COMM_WORLD);
  if (config.aggregators >= id.world_size)
    throw UserError(fmt::format("--aggregators {} needs at least {} ranks (one trainer), the job "
                                "has {}",
                                config.aggregators, config.aggregators + 1, id.world_size));
  if (id.rank == 0)
    return run_aggregator(config, id.world_size, local_rank);
  if (id.rank < config.aggregators)
    return run_shard_server(config, id.rank);
  return run_trainer(config, id.rank, local_rank);
}

} // namespace hetrain
