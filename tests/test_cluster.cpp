// Report messages (round trip; malformed and wrong-version refused), admission rules, and the CPU
// weighted sum against a float64 reference.
#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/cluster/admission.h"
#include "hetrain/cluster/report_message.h"
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
  expect_refused(bad, "protocol version 2");
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
  auto gpu = decide_admission({sample_report(1, 1000)}, AdmissionPolicy{true, 0});
  EXPECT_FALSE(gpu[0].admitted);
  EXPECT_NE(gpu[0].reason.find("--require-gpu"), std::string::npos);
  EXPECT_TRUE(decide_admission({sample_report(1, 5)}, AdmissionPolicy{})[0].admitted);
}

TEST(WeightedSumCpu, MatchesAFloat64ReferenceForManyShapes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> value(0.0f, 1.0f);
  for (int64_t length : {1, 7, 4099, (1 << 20) + 3}) {
    for (size_t n : {1u, 2u, 3u, 8u}) {
      std::vector<std::vector<float>> data(n, std::vector<float>(static_cast<size_t>(length)));
      std::vector<const float *> inputs;
      std::vector<float> weights;
      for (auto &d : data) {
        for (auto &x : d)
          x = value(rng);
        inputs.push_back(d.data());
        weights.push_back(value(rng));
      }
      std::vector<float> out(static_cast<size_t>(length), NAN); // poisoned
      weighted_sum_cpu(inputs, weights, out.data(), length, 2);
      for (int64_t j = 0; j < length; j += std::max<int64_t>(1, length / 997)) {
        double expected = 0, scale = 0;
        for (size_t i = 0; i < n; ++i) {
          expected += double(weights[i]) * double(data[i][static_cast<size_t>(j)]);
          scale += std::abs(double(weights[i]) * double(data[i][static_cast<size_t>(j)]));
        }
        ASSERT_NEAR(out[static_cast<size_t>(j)], expected, 1e-6 * std::max(1.0, scale))
            << "length " << length << " n " << n << " j " << j;
      }
    }
  }
  std::vector<float> a = {1, NAN, INFINITY}, b = {1, 1, 1}, out(3);
  weighted_sum_cpu({a.data(), b.data()}, {0.5f, 0.5f}, out.data(), 3);
  EXPECT_FLOAT_EQ(out[0], 1.0f);
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_TRUE(std::isinf(out[2]));
  EXPECT_THROW(weighted_sum_cpu({a.data()}, {1.0f, 2.0f}, out.data(), 3), std::invalid_argument);
}

} // namespace
