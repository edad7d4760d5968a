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
  c.uploading = {true, false, true};
  c.refresh = {false, true, true};
  c.receiving = {true, true, false};
  c.trainer_samples = {96, 0, 160};
  const Words w = encode(c, 3);
  ASSERT_EQ(w.size(), ShardCommand::words(3));
  const ShardCommand d = decode_shard_command(w);
  EXPECT_EQ(d.kind, c.kind);
  EXPECT_EQ(d.global_step, 9);
  EXPECT_EQ(d.samples, 250);
  EXPECT_EQ(d.lr, 3e-4);
  EXPECT_EQ(d.uploading, c.uploading);
  EXPECT_EQ(d.refresh, c.refresh);
  EXPECT_EQ(d.receiving, c.receiving);
  EXPECT_EQ(d.trainer_samples, c.trainer_samples);
  // A trainer's flags word outside its three bits is refused, not misread; so is a negative
  // sample count, and a word short of two per trainer.
  Words bad = w;
  bad[w.size() - 4] = 8;
  EXPECT_THROW(decode_shard_command(bad), ProtocolError);
  bad = w;
  bad.back() = -1;
  EXPECT_THROW(decode_shard_command(bad), ProtocolError);
  bad = w;
  bad.pop_back();
  EXPECT_THROW(decode_shard_command(bad), ProtocolError);
  // A default command is kStop and says no trainer works.
  const ShardCommand stop = decode_shard_command(encode(ShardCommand{}, 3));
  EXPECT_EQ(stop.kind, ShardCommand::Kind::kStop);
  EXPECT_EQ(stop.uploading, std::vector<bool>(3, false));
  EXPECT_EQ(stop.trainer_samples, std::vector<int64_t>(3, 0));
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
                        "a round command of protocol version 9, this hetrain speaks 8");
  Words short_one(command.begin(), command.end() - 1);
  expect_protocol_error([&] { decode_round_command(short_one); },
                        "a round command of 10 words, expected 11");
  Words garbage(RoundCommand::kWords, 12345);
  expect_protocol_error([&] { decode_round_command(garbage); }, "not a hetrain message");
  Words bad_kind = command;
  bad_kind[1] = 42;
  expect_protocol_error([&] { decode_round_command(bad_kind); }, "unknown kind 42");
  Words setup = encode(ShardSetup{1, {2}, {2}}, 4);
  setup[2] = 9; // claims 9 trainers in room for 4
  expect_protocol_error([&] { decode_shard_setup(setup); }, "naming 9 trainers");
}

// The wire format word for word (DESIGN §7), written out here rather than computed, so that a
// change of the encoder that still round-trips (another field order, another bool or enum
// encoding, another header) fails: ranks of two builds must keep understanding each other.
TEST(Messages, WireWordsAreFixed) {
  const auto header = [](int64_t type) { return int64_t{0x4854} << 32 | type << 16 | 8; };
  const auto word = [](uint64_t bits) { return static_cast<int64_t>(bits); };

  RoundCommand command;
  command.kind = RoundCommand::Kind::kStop;
  command.epoch = 5;
  command.offset = 6;
  command.count = 7;
  command.global_step = 8;
  command.local_steps = 9;
  command.attempt = 10;
  command.send_timeline = true;
  command.members = 0x8000000000000001;
  command.round_steps = 12;
  EXPECT_EQ(encode(command),
            (Words{header(1), 3, 5, 6, 7, 8, 9, 10, 1, word(0x8000000000000001), 12}));

  RoundStats stats;
  stats.loss_sum = 0.5;
  stats.correct = 11;
  stats.samples = 12;
  stats.compute_seconds = 1.5;
  stats.stop_signal = 15;
  stats.micro_batch = 16;
  stats.gpu_valid = true;
  stats.gpu_utilization = 0.25;
  stats.gpu_memory_used = 1024;
  stats.gpu_temperature = -1;
  stats.gpu_power = 2;
  stats.data_wait_seconds = 0.125;
  stats.wire_relative_error = 0.5;
  stats.overlapped_steps = 3;
  EXPECT_EQ(
      encode(stats),
      (Words{header(2), word(0x3FE0000000000000), 11, 12, word(0x3FF8000000000000), 15, 16, 1,
             word(0x3FD0000000000000), word(0x4090000000000000), word(0xBFF0000000000000),
             word(0x4000000000000000), word(0x3FC0000000000000), word(0x3FE0000000000000), 3}));

  // Trainer pairs, then zeros up to the world size's length.
  EXPECT_EQ(encode(ShardSetup{17, {2, 3}, {4, 6}}, 3), (Words{header(3), 17, 2, 2, 4, 3, 6, 0, 0}));

  ShardCommand shard;
  shard.kind = ShardCommand::Kind::kGather;
  shard.global_step = 18;
  shard.samples = 19;
  shard.lr = 3;
  shard.uploading = {true, false, false, true};
  shard.refresh = {false, true, false, true};
  shard.receiving = {false, false, true, true};
  shard.trainer_samples = {21, 0, 0, 22};
  // One flags word per trainer (bit 0 uploading, 1 refresh, 2 receiving), then one samples word
  // per trainer; a trainer beyond the lists has no flag set and no samples.
  EXPECT_EQ(encode(shard, 5), (Words{header(4), 4, 18, 19, word(0x4008000000000000), 1, 2, 4, 7, 0,
                                     21, 0, 0, 22, 0}));

  EXPECT_EQ(encode(ShardAck{0.5, 0.25, 0.125, 21}),
            (Words{header(5), word(0x3FE0000000000000), word(0x3FD0000000000000),
                   word(0x3FC0000000000000), 21}));

  // The reason's bytes in order from word 2 on (little-endian words), zeros after it.
  Words verdict(66, 0);
  verdict[0] = header(6);
  verdict[1] = 1;
  verdict[2] = word(0x6867666564636261); // "abcdefgh"
  verdict[3] = 0x6A69;                   // "ij"
  EXPECT_EQ(encode(VerdictMessage{true, "abcdefghij"}), verdict);

  EXPECT_EQ(encode(OptimizerStateHeader{22, 2, 23}), (Words{header(7), 22, 2, 23}));
  command.kind = RoundCommand::Kind::kLoadOptimizer;
  EXPECT_EQ(encode(command).at(1), 6);
}

namespace {

// Every field Message::fields() lists survives `decode(encode(sent))`. `sent` must set each field
// away from its default and the fixed words must differ from each other, so that a field lost,
// left at its default or read into another field's place fails.
template <class Message, class Decode>
void expect_every_field_round_trips(const Message &sent, const Words &words, Decode decode) {
  const Message got = decode(words);
  int index = 0;
  Message::fields([&](auto field) {
    EXPECT_TRUE(sent.*field != Message{}.*field) << "field " << index << " left at its default";
    EXPECT_TRUE(got.*field == sent.*field) << "field " << index << " changed on the way";
    ++index;
  });
  EXPECT_EQ(fixed_words<Message>(), static_cast<size_t>(index) + 1);
  for (size_t i = 1; i < fixed_words<Message>(); ++i)
    for (size_t j = 1; j < i; ++j)
      EXPECT_NE(words.at(i), words.at(j)) << "fields " << j - 1 << " and " << i - 1;
}

} // namespace

TEST(Messages, EveryFieldOfEveryMessageRoundTrips) {
  RoundCommand command;
  command.kind = RoundCommand::Kind::kOut;
  command.epoch = 11;
  command.offset = 12;
  command.count = 13;
  command.global_step = 14;
  command.local_steps = 15;
  command.attempt = 16;
  command.send_timeline = true;
  command.members = 17;
  command.round_steps = 18;
  expect_every_field_round_trips(command, encode(command), decode_round_command);

  RoundStats stats;
  stats.loss_sum = 0.5;
  stats.correct = 21;
  stats.samples = 22;
  stats.compute_seconds = 1.5;
  stats.stop_signal = 23;
  stats.micro_batch = 24;
  stats.gpu_valid = true;
  stats.gpu_utilization = 0.25;
  stats.gpu_memory_used = 2048;
  stats.gpu_temperature = 55.5;
  stats.gpu_power = 300.125;
  stats.data_wait_seconds = 0.0625;
  stats.wire_relative_error = 0.003;
  stats.overlapped_steps = 7;
  expect_every_field_round_trips(stats, encode(stats), decode_round_stats);

  const ShardSetup setup{31, {5, 6}, {7, 8}};
  expect_every_field_round_trips(setup, encode(setup, 4), decode_shard_setup);
  EXPECT_EQ(decode_shard_setup(encode(setup, 4)).job_ranks, setup.job_ranks);
  EXPECT_EQ(decode_shard_setup(encode(setup, 4)).world_ranks, setup.world_ranks);

  ShardCommand shard;
  shard.kind = ShardCommand::Kind::kRound;
  shard.global_step = 41;
  shard.samples = 42;
  shard.lr = 0.75;
  shard.uploading = {true, false, true};
  shard.refresh = {false, true, true};
  shard.receiving = {true, true, false};
  shard.trainer_samples = {43, 0, 44};
  expect_every_field_round_trips(shard, encode(shard, 3), decode_shard_command);
  const ShardCommand got = decode_shard_command(encode(shard, 3));
  EXPECT_EQ(got.uploading, shard.uploading);
  EXPECT_EQ(got.refresh, shard.refresh);
  EXPECT_EQ(got.receiving, shard.receiving);
  EXPECT_EQ(got.trainer_samples, shard.trainer_samples);

  const ShardAck ack{1.25, 2.5, 3.75, 51};
  expect_every_field_round_trips(ack, encode(ack), decode_shard_ack);

  const VerdictMessage verdict{true, "not fast enough"};
  expect_every_field_round_trips(verdict, encode(verdict), decode_verdict);
  EXPECT_EQ(decode_verdict(encode(verdict)).reason, verdict.reason);

  const OptimizerStateHeader state{61, 2, 62};
  expect_every_field_round_trips(state, encode(state), decode_optimizer_state_header);
}

// The lengths both sides post receives for, counted from the field lists.
TEST(Messages, WordCountsFollowTheFieldLists) {
  static_assert(RoundCommand::kWords == 11 && RoundStats::kWords == 15 && ShardAck::kWords == 5 &&
                VerdictMessage::kWords == 66 && OptimizerStateHeader::kWords == 4);
  EXPECT_EQ(ShardSetup::words(8), 19u);
  EXPECT_EQ(ShardCommand::words(3), 11u); // 5 fixed, 2 per trainer
}
