// The typed control messages of comm/messages.h: every field survives a round trip, and a
// message of another type, protocol version or length is refused with ProtocolError naming it.
#include "hetrain/comm/messages.h"

#include <gtest/gtest.h>

#include <string>

using namespace hetrain;

namespace {

template <typename Decode> void expect_protocol_error(Decode decode, const std::string &says) {
  try {
    decode();
    FAIL() << "not refused; expected: " << says;
  } catch (const ProtocolError &e) {
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

RoundCommand sample_command() {
  RoundCommand c;
  c.kind = RoundCommand::Kind::kRound;
  c.epoch = 3;
  c.offset = 1 << 20;
  c.count = 96;
  c.global_step = int64_t{1} << 40;
  c.local_steps = 4;
  c.attempt = 2;
  c.send_timeline = true;
  c.members = uint64_t{1} << 62 | 5; // the highest member bit a group may use survives
  return c;
}

} // namespace

TEST(Messages, RoundCommandRoundTrip) {
  const RoundCommand c = sample_command();
  const Words w = encode(c);
  ASSERT_EQ(w.size(), RoundCommand::kWords);
  const RoundCommand d = decode_round_command(w);
  EXPECT_EQ(d.kind, c.kind);
  EXPECT_EQ(d.epoch, c.epoch);
  EXPECT_EQ(d.offset, c.offset);
  EXPECT_EQ(d.count, c.count);
  EXPECT_EQ(d.global_step, c.global_step);
  EXPECT_EQ(d.local_steps, c.local_steps);
  EXPECT_EQ(d.attempt, c.attempt);
  EXPECT_TRUE(d.send_timeline);
  EXPECT_EQ(d.members, c.members);
  RoundCommand out = c;
  out.kind = RoundCommand::Kind::kOut; // a trainer left out of the plan: no parameters follow
  EXPECT_EQ(decode_round_command(encode(out)).kind, RoundCommand::Kind::kOut);
}

TEST(Messages, RoundStatsRoundTripKeepsDoublesBitForBit) {
  RoundStats s;
  s.loss_sum = 0.1 + 0.2; // not representable exactly: the bits must survive
  s.correct = 77;
  s.samples = 128;
  s.compute_seconds = 1.0 / 3.0;
  s.stop_signal = 15;
  s.micro_batch = 8;
  s.gpu_valid = true;
  s.gpu_utilization = 0.93;
  s.gpu_memory_used = 7.5e9;
  s.gpu_temperature = 61;
  s.gpu_power = 312.25;
  s.data_wait_seconds = 0.015625;
  const RoundStats d = decode_round_stats(encode(s));
  EXPECT_EQ(d.loss_sum, s.loss_sum);
  EXPECT_EQ(d.correct, s.correct);
  EXPECT_EQ(d.samples, s.samples);
  EXPECT_EQ(d.compute_seconds, s.compute_seconds);
  EXPECT_EQ(d.stop_signal, s.stop_signal);
  EXPECT_EQ(d.micro_batch, s.micro_batch);
  EXPECT_TRUE(d.gpu_valid);
  EXPECT_EQ(d.gpu_utilization, s.gpu_utilization);
  EXPECT_EQ(d.gpu_memory_used, s.gpu_memory_used);
  EXPECT_EQ(d.gpu_temperature, s.gpu_temperature);
  EXPECT_EQ(d.gpu_power, s.gpu_power);
  EXPECT_EQ(d.data_wait_seconds, s.data_wait_seconds);
}

TEST(Messages, ShardSetupRoundTripWithFewerTrainersThanRanks) {
  ShardSetup s;
  s.optimizer_steps = 41;
  s.job_ranks = {2, 3, 4};
  s.world_ranks = {2, 5, 7};
  const Words w = encode(s, 8);
  ASSERT_EQ(w.size(), ShardSetup::words(8));
  const ShardSetup d = decode_shard_setup(w);
  EXPECT_EQ(d.optimizer_steps, 41);
  EXPECT_EQ(d.job_ranks, s.job_ranks);
  EXPECT_EQ(d.world_ranks, s.world_ranks);
  EXPECT_THROW(encode(s, 2), std::logic_error); // more trainers than ranks
}

TEST(Messages, ShardCommandRoundTrip) {
  ShardCommand c;
  c.kind = ShardCommand::Kind::kRound;
  c.global_step = 9;
  c.samples = 250;
  c.lr = 3e-4;
  c.optimizer_steps = 8;
  c.uploading = {true, false, true};
  c.refresh = {false, true, true};
  c.receiving = {true, true, false};
  const Words w = encode(c, 3);
  ASSERT_EQ(w.size(), ShardCommand::words(3));
  const ShardCommand d = decode_shard_command(w);
  EXPECT_EQ(d.kind, c.kind);
  EXPECT_EQ(d.global_step, 9);
  EXPECT_EQ(d.samples, 250);
  EXPECT_EQ(d.lr, 3e-4);
  EXPECT_EQ(d.optimizer_steps, 8);
  EXPECT_EQ(d.uploading, c.uploading);
  EXPECT_EQ(d.refresh, c.refresh);
  EXPECT_EQ(d.receiving, c.receiving);
  // A trainer's flags word outside its three bits is refused, not misread.
  Words bad = w;
  bad.back() = 8;
  EXPECT_THROW(decode_shard_command(bad), ProtocolError);
  // A default command is kStop and says no trainer works.
  const ShardCommand stop = decode_shard_command(encode(ShardCommand{}, 3));
  EXPECT_EQ(stop.kind, ShardCommand::Kind::kStop);
  EXPECT_EQ(stop.uploading, std::vector<bool>(3, false));
}

TEST(Messages, ShardAckAndVerdictRoundTrip) {
  ShardAck a{0.25, 0.125, 0.0625, int64_t{3} << 33};
  const ShardAck d = decode_shard_ack(encode(a));
  EXPECT_EQ(d.receive_seconds, 0.25);
  EXPECT_EQ(d.reduce_seconds, 0.125);
  EXPECT_EQ(d.step_seconds, 0.0625);
  EXPECT_EQ(d.bytes_received, a.bytes_received);

  const VerdictMessage yes = decode_verdict(encode(VerdictMessage{true, ""}));
  EXPECT_TRUE(yes.admitted);
  EXPECT_EQ(yes.reason, "");
  const std::string why = "probe speed 0.01 of the fastest, below --min-relative-speed 0.2";
  const VerdictMessage no = decode_verdict(encode(VerdictMessage{false, why}));
  EXPECT_FALSE(no.admitted);
  EXPECT_EQ(no.reason, why);
  // A reason longer than the message holds is cut, never overflows.
  const VerdictMessage cut = decode_verdict(encode(VerdictMessage{false, std::string(2000, 'x')}));
  EXPECT_EQ(cut.reason, std::string(511, 'x'));
}

TEST(Messages, WrongTypeVersionLengthOrKindIsRefused) {
  const Words command = encode(sample_command());
  expect_protocol_error([&] { decode_round_stats(command); },
                        "expected a round statistics, got a round command");
  Words other_version = command;
  other_version[0] += 1; // the version is the header's low 16 bits
  expect_protocol_error([&] { decode_round_command(other_version); },
                        "a round command of protocol version 5, this hetrain speaks 4");
  Words short_one(command.begin(), command.end() - 1);
  expect_protocol_error([&] { decode_round_command(short_one); },
                        "a round command of 9 words, expected 10");
  Words garbage(RoundCommand::kWords, 12345);
  expect_protocol_error([&] { decode_round_command(garbage); }, "not a hetrain message");
  Words bad_kind = command;
  bad_kind[1] = 42;
  expect_protocol_error([&] { decode_round_command(bad_kind); }, "unknown kind 42");
  Words setup = encode(ShardSetup{1, {2}, {2}}, 4);
  setup[2] = 9; // claims 9 trainers in room for 4
  expect_protocol_error([&] { decode_shard_setup(setup); }, "naming 9 trainers");
}
