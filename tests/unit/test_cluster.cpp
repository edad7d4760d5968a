// Report messages (round trip; malformed and wrong-version refused), admission rules, and the CPU
// weighted sum against a float64 reference.
#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/cluster/admission.h"
#include "hetrain/cluster/aggregator_layout.h"
#include "hetrain/cluster/device_placement.h"
#include "hetrain/cluster/report_message.h"
#include "hetrain/cluster/thread_share.h"
#include "hetrain/common/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace hetrain;

namespace {

TrainerReport sample_report(int rank, double speed) {
  TrainerReport r;
  r.rank = rank;
  r.pid = 4242;
  r.host = "node-" + std::to_string(rank);
  r.cpu_model = "Test CPU";
  r.device = "cpu (2 cores)";
  r.blas = "OpenBLAS";
  r.usable_cores = 2;
  r.mem_available = int64_t{8} << 30;
  r.swap_free = 0;
  r.gpu_count = 0;
  r.device_memory_free = int64_t{8} << 30;
  r.cpu_score = 700;
  r.matmul_gflops = 120;
  r.probe_samples_per_sec = speed;
  r.probe_peak_bytes = 1e7;
  r.gemm_tflops_fp16 = 700.5;
  r.gemm_tflops_fp32 = 51.25;
  r.h2d_gbps = 24.5;
  r.bf16 = true;
  return r;
}

TEST(ReportMessage, RoundTripKeepsEveryField) {
  TrainerReport r = sample_report(3, 1234.5);
  std::vector<uint8_t> bytes = encode_report(r);
  ASSERT_EQ(bytes.size(), kReportMessageBytes);
  TrainerReport d = decode_report(bytes);
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.pid, 4242);
  EXPECT_EQ(d.host, "node-3");
  EXPECT_EQ(d.cpu_model, "Test CPU");
  EXPECT_EQ(d.device, "cpu (2 cores)");
  EXPECT_EQ(d.blas, "OpenBLAS");
  EXPECT_EQ(d.mem_available, int64_t{8} << 30);
  EXPECT_DOUBLE_EQ(d.probe_samples_per_sec, 1234.5);
  EXPECT_DOUBLE_EQ(d.probe_peak_bytes, 1e7);
  EXPECT_DOUBLE_EQ(d.gemm_tflops_fp16, 700.5);
  EXPECT_DOUBLE_EQ(d.gemm_tflops_fp32, 51.25);
  EXPECT_DOUBLE_EQ(d.h2d_gbps, 24.5);
  EXPECT_TRUE(d.bf16);
  // Over-long text is cut, not overflowed.
  r.host = std::string(300, 'h');
  EXPECT_EQ(decode_report(encode_report(r)).host, std::string(63, 'h'));
}

TEST(ReportMessage, MalformedAndWrongVersionMessagesAreRefused) {
  const std::vector<uint8_t> good = encode_report(sample_report(1, 10));
  auto expect_refused = [](std::vector<uint8_t> bytes, const char *phrase) {
    try {
      decode_report(bytes);
      ADD_FAILURE() << "accepted; expected " << phrase;
    } catch (const UserError &e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  std::vector<uint8_t> bad = good;
  bad[0] ^= 0xff;
  expect_refused(bad, "bad magic");
  bad = good;
  uint32_t version = kProtocolVersion + 1;
  std::memcpy(bad.data() + 4, &version, 4);
  expect_refused(bad, ("protocol version " + std::to_string(kProtocolVersion + 1)).c_str());
  bad = good;
  bad.pop_back();
  expect_refused(bad, "expected");
  expect_refused({1, 2, 3}, "too short");
  bad = good;
  std::memset(bad.data() + kReportMessageBytes - 160, 'x', 160); // unterminated text field
  expect_refused(bad, "not terminated");
  TrainerReport negative = sample_report(1, -5);
  expect_refused(encode_report(negative), "out of range");
}

TEST(Admission, RulesNameTheirReasons) {
  std::vector<TrainerReport> reports = {sample_report(1, 1000), sample_report(2, 100),
                                        sample_report(3, 0), sample_report(4, 900)};
  reports[3].probe_peak_bytes = 2e10; // more than its 8 GiB
  auto verdicts = decide_admission(reports, AdmissionPolicy{false, 0.2});
  ASSERT_EQ(verdicts.size(), 4u);
  EXPECT_TRUE(verdicts[0].admitted);
  EXPECT_FALSE(verdicts[1].admitted);
  EXPECT_NE(verdicts[1].reason.find("0.10 of the fastest"), std::string::npos)
      << verdicts[1].reason;
  EXPECT_FALSE(verdicts[2].admitted);
  EXPECT_NE(verdicts[2].reason.find("probe did not run"), std::string::npos);
  EXPECT_FALSE(verdicts[3].admitted);
  EXPECT_NE(verdicts[3].reason.find("MiB free"), std::string::npos) << verdicts[3].reason;
  TrainerReport old_gpu = sample_report(1, 1000);
  old_gpu.bf16 = false;
  old_gpu.device = "Tesla V100";
  auto bf16 = decide_admission({old_gpu, sample_report(2, 900)}, AdmissionPolicy{false, 0, true});
  EXPECT_FALSE(bf16[0].admitted);
  EXPECT_NE(bf16[0].reason.find("Tesla V100 has no bf16"), std::string::npos) << bf16[0].reason;
  EXPECT_TRUE(bf16[1].admitted);
  EXPECT_TRUE(decide_admission({old_gpu}, AdmissionPolicy{})[0].admitted);
  auto gpu = decide_admission({sample_report(1, 1000)}, AdmissionPolicy{true, 0});
  EXPECT_FALSE(gpu[0].admitted);
  EXPECT_NE(gpu[0].reason.find("--require-gpu"), std::string::npos);
  EXPECT_TRUE(decide_admission({sample_report(1, 5)}, AdmissionPolicy{})[0].admitted);
}

} // namespace

TEST(ReportMessage, BuiltFromWhatTheTrainerMeasured) {
  NodeReport node;
  node.pid = 17;
  node.host = "gpu-node";
  node.cpu_model = "Test CPU";
  node.usable_cores = 16;
  node.mem_available = int64_t{64} << 30;
  node.blas.name = "OpenBLAS";
  node.cpu_bf16 = false;
  GpuInfo gpu;
  gpu.name = "NVIDIA H200";
  gpu.memory_free = int64_t{140} << 30;
  gpu.bf16 = true;
  node.gpus = {gpu, gpu};
  ProbeResult probe;
  probe.samples_per_sec = 12345;
  probe.peak_bytes = 2e9;
  const TrainerReport on_gpu = make_trainer_report(3, node, probe, &node.gpus[1]);
  EXPECT_EQ(on_gpu.rank, 3);
  EXPECT_EQ(on_gpu.device, "NVIDIA H200");
  EXPECT_EQ(on_gpu.device_memory_free, int64_t{140} << 30);
  EXPECT_EQ(on_gpu.gpu_count, 2);
  EXPECT_TRUE(on_gpu.bf16);
  EXPECT_EQ(on_gpu.probe_samples_per_sec, 12345);
  const TrainerReport on_cpu = make_trainer_report(4, node, probe, nullptr);
  EXPECT_EQ(on_cpu.device, "cpu (16 cores)");
  EXPECT_EQ(on_cpu.device_memory_free, node.mem_available);
  EXPECT_FALSE(on_cpu.bf16);
  // What is built is what travels.
  EXPECT_EQ(decode_report(encode_report(on_cpu)).device, "cpu (16 cores)");
}

TEST(ThreadShare, RanksSharingCoresDivideThemAndTheAggregatorTakesOne) {
  const int agg = static_cast<int>(RankRole::kAggregator),
            tr = static_cast<int>(RankRole::kTrainer);
  // 1 + 3 ranks on 2 cores: one thread each (was 2 each: 8 threads on 2 cores).
  EXPECT_EQ(default_threads(2, {agg, tr, tr, tr}, RankRole::kTrainer), 1);
  EXPECT_EQ(default_threads(2, {agg, tr, tr, tr}, RankRole::kAggregator), 1);
  // 1 + 3 on 16 cores: the aggregator takes one, the trainers share the other 15.
  EXPECT_EQ(default_threads(16, {agg, tr, tr, tr}, RankRole::kTrainer), 5);
  EXPECT_EQ(default_threads(16, {agg, tr, tr, tr}, RankRole::kAggregator), 1);
  // A trainer alone on its host (or bound to cores of its own) keeps every core it may use.
  EXPECT_EQ(default_threads(8, {tr}, RankRole::kTrainer), 8);
  // Aggregators alone on a host divide it.
  EXPECT_EQ(default_threads(8, {agg, agg}, RankRole::kAggregator), 4);
  // Never zero.
  EXPECT_EQ(default_threads(1, {agg, agg, tr, tr, tr}, RankRole::kTrainer), 1);
}

// --aggregators-per-host: A = hosts; ranks 0..A-1 one per host, or the error says how to place.
TEST(AggregatorLayout, OnePerHostWhenRanksAreDealtOverHosts) {
  // mpirun --map-by node on 3 hosts, 6 ranks: hosts of ranks 0..5 are 0,1,2,0,1,2.
  EXPECT_EQ(aggregators_per_host({0, 1, 2, 0, 1, 2}), 3);
  // 4 hosts, 2 trainers on each after its aggregator (a rankfile): 4 aggregators.
  EXPECT_EQ(aggregators_per_host({0, 1, 2, 3, 0, 0, 1, 1, 2, 2, 3, 3}), 4);
  // One host: one aggregator (rank 0), as without the option.
  EXPECT_EQ(aggregators_per_host({0, 0, 0}), 1);
}

TEST(AggregatorLayout, RanksFilledHostByHostAreRefusedWithTheFix) {
  try {
    aggregators_per_host({0, 0, 0, 3, 3, 3}); // mpirun's default --map-by slot: 2 hosts
    FAIL() << "ranks 0 and 1 share a host";
  } catch (const UserError &e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ranks 0 and 1 share a host"), std::string::npos) << what;
    EXPECT_NE(what.find("--map-by node"), std::string::npos) << what;
  }
  EXPECT_THROW(aggregators_per_host({0, 1, 2}), UserError); // no trainer left
}

// Device placement (cluster/device_placement.h): the rules with a given GPU count, so they are
// tested on machines without GPUs.
namespace {
std::vector<HostRank> aggregator_and_trainers(int trainers, DeviceWish aggregator) {
  std::vector<HostRank> host{{RankRole::kAggregator, aggregator}};
  for (int i = 0; i < trainers; ++i)
    host.push_back({RankRole::kTrainer, DeviceWish::kAuto});
  return host;
}
} // namespace

TEST(DevicePlacement, AggregatorGoesToCpuWhenTrainersTakeEveryGpu) {
  const auto places = place_devices(aggregator_and_trainers(4, DeviceWish::kAuto), 4);
  ASSERT_EQ(places.size(), 5u);
  EXPECT_EQ(places[0].gpu, -1);
  EXPECT_NE(places[0].reason.find("no spare GPU"), std::string::npos) << places[0].reason;
  for (int t = 1; t <= 4; ++t)
    EXPECT_EQ(places[static_cast<size_t>(t)].gpu, t - 1); // each trainer its own
}

TEST(DevicePlacement, AggregatorGetsASpareGpu) {
  const auto places = place_devices(aggregator_and_trainers(4, DeviceWish::kAuto), 5);
  EXPECT_EQ(places[0].gpu, 4);
  for (int t = 1; t <= 4; ++t)
    EXPECT_EQ(places[static_cast<size_t>(t)].gpu, t - 1);
  EXPECT_NE(places[0].reason.find("its own"), std::string::npos) << places[0].reason;
}

TEST(DevicePlacement, ExplicitCudaSharesAndSaysSo) {
  const auto places = place_devices(aggregator_and_trainers(2, DeviceWish::kCuda), 2);
  EXPECT_EQ(places[0].gpu, 0);
  EXPECT_NE(places[0].reason.find("shared"), std::string::npos) << places[0].reason;
  EXPECT_EQ(places[1].gpu, 0);
  EXPECT_EQ(places[2].gpu, 1);
}

TEST(DevicePlacement, CpuWishesAndNoGpus) {
  EXPECT_EQ(place_devices(aggregator_and_trainers(2, DeviceWish::kCpu), 8)[0].gpu, -1);
  for (const DevicePlace &p : place_devices(aggregator_and_trainers(3, DeviceWish::kCuda), 0))
    EXPECT_EQ(p.gpu, -1);
  const std::vector<HostRank> cpu_trainers{{RankRole::kTrainer, DeviceWish::kCpu},
                                           {RankRole::kAggregator, DeviceWish::kAuto}};
  const auto places = place_devices(cpu_trainers, 1);
  EXPECT_EQ(places[0].gpu, -1);
  EXPECT_EQ(places[1].gpu, 0); // the GPU is spare: the trainer wants the CPU
}

TEST(DevicePlacement, MoreTrainersThanGpusShareRoundRobin) {
  const auto places = place_devices(aggregator_and_trainers(3, DeviceWish::kAuto), 2);
  EXPECT_EQ(places[0].gpu, -1);
  EXPECT_EQ(places[1].gpu, 0);
  EXPECT_EQ(places[2].gpu, 1);
  EXPECT_EQ(places[3].gpu, 0);
  EXPECT_NE(places[3].reason.find("shared"), std::string::npos);
}

TEST(DevicePlacement, AggregatorNeedNotBeLocalRankZero) {
  // rank 0 may land after trainers on its host (a launcher's own ordering)
  const std::vector<HostRank> host{{RankRole::kTrainer, DeviceWish::kAuto},
                                   {RankRole::kAggregator, DeviceWish::kAuto},
                                   {RankRole::kTrainer, DeviceWish::kAuto}};
  const auto places = place_devices(host, 3);
  EXPECT_EQ(places[0].gpu, 0);
  EXPECT_EQ(places[1].gpu, 2);
  EXPECT_EQ(places[2].gpu, 1);
}
