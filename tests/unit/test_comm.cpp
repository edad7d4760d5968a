// comm/ and the pipelined reduce in one process, without mpirun: the first test that needs MPI
// starts a singleton MPI (MpiSession, as hetrain does; Open MPI runs a process started without a
// launcher as a world of one), and the end of the test program finalizes it. Every message goes
// from rank 0 to itself, on a duplicate of MPI_COMM_SELF of its own per test so that nothing a
// test leaves behind (a beat, a cancelled receive) can match another test's receive.
//
//   RequestSet        chunked transfers arrive whole, in any chunk order; a wait past its deadline
//                     throws PeerTimeout naming the peer and what it waited for; the wait hook
//   Inbox             delivers its tag's messages in order, a wrong type is refused by decode,
//                     a timeout keeps the receive, cancel leaves the message for the next post
//   heartbeat         beats keep a wait alive; silence ends it with LeaderLost within the limit
//   PipelinedReduce   its sum equals a plain (weighted) sum of the uploads, reduced piece by
//                     piece as all copies of a piece arrive, on the fp32 and bf16 wires
#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/heartbeat.h"
#include "hetrain/comm/messages.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"

#include "pipelined_reduce.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace hetrain;

namespace {

std::unique_ptr<MpiSession> &session() {
  static std::unique_ptr<MpiSession> mpi;
  return mpi;
}

// Finalizes the singleton MPI after the last test, if a test started it (a finalize that hangs
// for 30 s ends the program with exit code 1).
class MpiEnvironment : public ::testing::Environment {
public:
  void TearDown() override {
    if (session())
      session()->finalize(1, 30);
  }
};
::testing::Environment *const mpi_environment =
    ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

// A communicator of this process alone, with MPI_ERRORS_RETURN so that MPI's codes reach
// CHECK_MPI; freed at the end of the test.
class SelfComm {
public:
  SelfComm() {
    if (!session())
      session() = std::make_unique<MpiSession>(nullptr, nullptr);
    MPI_Comm_dup(MPI_COMM_SELF, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~SelfComm() { MPI_Comm_free(&comm_); }
  SelfComm(const SelfComm &) = delete;
  SelfComm &operator=(const SelfComm &) = delete;
  operator MPI_Comm() const { return comm_; }

private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

RoundCommand command_of_epoch(int64_t epoch) {
  RoundCommand c;
  c.kind = RoundCommand::Kind::kRound;
  c.epoch = epoch;
  c.count = 32;
  return c;
}

// Polls `done` until it holds or 10 s pass (MPI moves self-sends along inside its calls).
template <class Done> bool eventually(Done done) {
  const auto start = Clock::now();
  while (!done()) {
    if (seconds_since(start) > 10)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

} // namespace

// --- RequestSet and the chunked transfers ----------------------------------------------------

TEST(RequestSet, ChunkedSelfSendArrivesWhole) {
  SelfComm comm;
  std::vector<float> sent(10), got(10, -1);
  for (size_t i = 0; i < sent.size(); ++i)
    sent[i] = 0.5f * static_cast<float>(i) + 1;
  RequestSet set;
  EXPECT_EQ(irecv_chunks(set, got.data(), 10, 3, 0, 5, comm, "chunks back"), 0u);
  EXPECT_EQ(set.size(), 4u); // chunks of 3, 3, 3 and 1
  EXPECT_EQ(isend_chunks(set, sent.data(), 10, 3, 0, 5, comm, "chunks out"), 4u);
  EXPECT_EQ(set.size(), 8u);
  set.wait_all(30);
  EXPECT_EQ(got, sent);
  for (size_t i = 0; i < set.size(); ++i)
    EXPECT_TRUE(set.done(i)) << i;
  EXPECT_TRUE(set.test_all());
  EXPECT_TRUE(set.pending_peers().empty());

  // An empty buffer still travels as one (empty) chunk, so the receiver's wait ends.
  EXPECT_EQ(chunk_count(0, 3), 1);
  RequestSet empty;
  irecv_chunks(empty, got.data(), 0, 3, 0, 6, comm, "nothing back");
  isend_chunks(empty, sent.data(), 0, 3, 0, 6, comm, "nothing out");
  EXPECT_EQ(empty.size(), 2u);
  empty.wait_all(30);
}

TEST(RequestSet, ChunksWithATagEachArriveInAnyOrder) {
  SelfComm comm;
  std::vector<int64_t> sent = {10, 11, 12, 13, 14, 15, 16}, got(7, 0);
  RequestSet receives, sends;
  irecv_chunks(receives, got.data(), 7, 2, MPI_INT64_T, 8, 0, 20, comm, "pieces", true);
  ASSERT_EQ(receives.size(), 4u);
  // Last chunk first, as --overlap sends them; chunk k travels with tag 20 + k.
  for (int k = 3; k >= 0; --k) {
    MPI_Request r;
    const int count = k == 3 ? 1 : 2;
    MPI_Isend(sent.data() + 2 * k, count, MPI_INT64_T, 0, 20 + k, comm, &r);
    sends.add(r, 0, "piece");
  }
  receives.wait_all(30);
  sends.wait_all(30);
  EXPECT_EQ(got, sent);
}

TEST(RequestSet, DeadlineNamesThePeerAndWhatItWaitedFor) {
  SelfComm comm;
  Words answer(3, 0), never(3, 0);
  const Words question = {1, 2, 3};
  RequestSet set;
  irecv_words(set, answer, 0, 7, comm, "the answer that comes");
  isend_words(set, question, 0, 7, comm, "the question");
  irecv_words(set, never, 0, 8, comm, "the answer that never comes");
  int polls = 0;
  const auto start = Clock::now();
  try {
    set.wait_all(0.6, [&] { ++polls; });
    FAIL() << "the wait ended without its last message";
  } catch (const PeerTimeout &e) {
    EXPECT_EQ(e.peer(), 0);
    EXPECT_TRUE(
        contains(e.what(), "rank 0 did not answer within 1 s (the answer that never comes)"))
        << e.what();
  }
  EXPECT_GE(seconds_since(start), 0.6);
  EXPECT_GT(polls, 1); // on_progress runs after every poll
  EXPECT_EQ(answer, question);
  EXPECT_TRUE(set.done(0));
  EXPECT_TRUE(set.done(1));
  EXPECT_FALSE(set.done(2));
  EXPECT_FALSE(set.test_all());
  EXPECT_EQ(set.pending_peers(), std::vector<int>{0});
  set.cancel_pending();
  EXPECT_TRUE(set.done(2));
  EXPECT_TRUE(set.test_all());
  EXPECT_TRUE(set.pending_peers().empty());
}

// In one process every request's peer is rank 0; RequestSet only records the peer it is given,
// so these requests stand for receives from ranks 5, 2, 5 and 1.
TEST(RequestSet, PendingPeersAreNamedOnceInRankOrder) {
  SelfComm comm;
  int64_t buffers[4] = {0, 0, 0, 0};
  const int64_t one = 1;
  RequestSet set;
  const int peers[3] = {5, 2, 5};
  for (int i = 0; i < 3; ++i) {
    MPI_Request r;
    MPI_Irecv(&buffers[i], 1, MPI_INT64_T, 0, 30 + i, comm, &r);
    set.add(r, peers[i], "from rank " + std::to_string(peers[i]));
  }
  MPI_Request r;
  MPI_Irecv(&buffers[3], 1, MPI_INT64_T, 0, 40, comm, &r);
  set.add(r, 1, "from rank 1");
  send_one({one}, 0, 40, comm, 30, "to myself");
  ASSERT_TRUE(eventually([&] {
    set.test_all();
    return set.done(3);
  }));
  EXPECT_EQ(set.pending_peers(), (std::vector<int>{2, 5}));
  try {
    set.wait_all(0.05);
    FAIL() << "the wait ended without its messages";
  } catch (const PeerTimeout &e) {
    EXPECT_EQ(e.peer(), 5); // the first incomplete request
    EXPECT_TRUE(contains(e.what(), "(from rank 5)")) << e.what();
  }
  set.cancel_pending();
}

namespace {
int hook_calls = 0;
void count_hook_call() { ++hook_calls; }
} // namespace

TEST(RequestSet, WaitRunsTheWaitHookOnEveryPoll) {
  SelfComm comm;
  Words never(1);
  RequestSet set;
  irecv_words(set, never, 0, 9, comm, "nothing");
  hook_calls = 0;
  set_wait_hook(&count_hook_call);
  EXPECT_THROW(set.wait_all(0.2), PeerTimeout);
  set_wait_hook(nullptr);
  EXPECT_GT(hook_calls, 1);
  set.cancel_pending();
}

// --- Inbox -----------------------------------------------------------------------------------

TEST(Inbox, DeliversItsTagsMessagesInOrder) {
  SelfComm comm;
  constexpr int kCommandTag = 13, kStatsTag = 14;
  Inbox commands(comm, 0, kCommandTag, RoundCommand::kWords);
  Inbox stats(comm, 0, kStatsTag, RoundStats::kWords);
  commands.post();
  stats.post();
  EXPECT_FALSE(commands.poll());
  EXPECT_FALSE(stats.poll());

  RoundStats s;
  s.loss_sum = 2.5;
  s.samples = 64;
  const std::vector<Words> out = {encode(s), encode(command_of_epoch(1)),
                                  encode(command_of_epoch(2))};
  RequestSet sends;
  isend_words(sends, out[0], 0, kStatsTag, comm, "statistics");
  isend_words(sends, out[1], 0, kCommandTag, comm, "first command");
  isend_words(sends, out[2], 0, kCommandTag, comm, "second command");

  commands.wait(30, "the first command");
  EXPECT_EQ(decode_round_command(commands.words()).epoch, 1);
  EXPECT_TRUE(commands.poll()); // holds the message until the next post()
  EXPECT_EQ(decode_round_command(commands.words()).epoch, 1);
  ASSERT_TRUE(eventually([&] { return stats.poll(); }));
  EXPECT_EQ(decode_round_stats(stats.words()).loss_sum, 2.5);
  EXPECT_EQ(decode_round_stats(stats.words()).samples, 64);
  commands.post();
  commands.wait(30, "the second command");
  EXPECT_EQ(decode_round_command(commands.words()).epoch, 2);
  sends.wait_all(30);

  // Another message type on the command tag arrives, and decoding refuses it by name.
  commands.post();
  const Words ack = encode(ShardAck{});
  send_one(ack, 0, kCommandTag, comm, 30, "an acknowledgement");
  commands.wait(30, "the third command");
  try {
    decode_round_command(commands.words());
    FAIL() << "a shard acknowledgement was read as a round command";
  } catch (const ProtocolError &e) {
    EXPECT_TRUE(contains(e.what(), "expected a round command, got a shard acknowledgement"))
        << e.what();
  }
}

// A longer message than the inbox's length is never read as the inbox's message: MPI reports the
// truncation (LibraryError from CHECK_MPI), or, as Open MPI 4.1 does on one process, delivers its
// first words, and decoding refuses them by the type in the header.
TEST(Inbox, LongerMessageOfAnotherTypeIsNeverReadAsACommand) {
  SelfComm comm;
  Inbox commands(comm, 0, 15, RoundCommand::kWords);
  commands.post();
  const Words stats = encode(RoundStats{}); // 13 words for a receive of 10
  RequestSet sends;
  isend_words(sends, stats, 0, 15, comm, "statistics");
  try {
    ASSERT_TRUE(eventually([&] { return commands.poll(); }));
    decode_round_command(commands.words());
    FAIL() << "round statistics were read as a round command";
  } catch (const LibraryError &e) {
    EXPECT_TRUE(contains(e.what(), "MPI_Test")) << e.what();
  } catch (const ProtocolError &e) {
    EXPECT_TRUE(contains(e.what(), "expected a round command, got a round statistics")) << e.what();
  }
  sends.wait_all(30);
}

TEST(Inbox, WaitTimesOutNamingThePeerAndKeepsTheReceive) {
  SelfComm comm;
  Inbox commands(comm, 0, 16, RoundCommand::kWords);
  commands.post();
  const auto start = Clock::now();
  try {
    commands.wait(0.3, "the next round command");
    FAIL() << "a wait for nothing ended";
  } catch (const PeerTimeout &e) {
    EXPECT_EQ(e.peer(), 0);
    EXPECT_TRUE(contains(e.what(), "(the next round command)")) << e.what();
  }
  EXPECT_GE(seconds_since(start), 0.3);
  // The receive is still posted: a message that comes later is delivered.
  send_one(encode(command_of_epoch(3)), 0, 16, comm, 30, "a late command");
  ASSERT_TRUE(eventually([&] { return commands.poll(); }));
  EXPECT_EQ(decode_round_command(commands.words()).epoch, 3);
}

TEST(Inbox, CancelLeavesTheMessageForTheNextPost) {
  SelfComm comm;
  Inbox commands(comm, 0, 17, RoundCommand::kWords);
  commands.post();
  commands.cancel();
  const Words sent = encode(command_of_epoch(7));
  RequestSet sends;
  isend_words(sends, sent, 0, 17, comm, "a command");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(commands.poll()); // nothing posted: nothing received
  commands.post();
  commands.wait(30, "the command");
  EXPECT_EQ(decode_round_command(commands.words()).epoch, 7);
  sends.wait_all(30);
}

// --- rank 0's heartbeat ----------------------------------------------------------------------

TEST(Heartbeat, ActivityScopeSaysAndRestores) {
  set_leader_activity(LeaderActivity::kRound);
  {
    LeaderActivityScope scope(LeaderActivity::kCheckpointing);
    EXPECT_EQ(leader_activity(), LeaderActivity::kCheckpointing);
    EXPECT_STREQ(activity_name(leader_activity()), "writing a checkpoint");
  }
  EXPECT_EQ(leader_activity(), LeaderActivity::kRound);
  EXPECT_EQ(heartbeat_period(8), 2);
  EXPECT_EQ(heartbeat_limit(8), 12);
}

TEST(Heartbeat, BeatsKeepAWaitGoingAndSilenceEndsIt) {
  SelfComm beats, data;
  if (!mpi_thread_multiple())
    GTEST_SKIP() << "this MPI does not provide MPI_THREAD_MULTIPLE: hetrain runs no heartbeat";
  LeaderActivityScope evaluating(LeaderActivity::kEvaluating);
  HeartbeatWatch watch(beats, 0, 1.0);
  auto sender = std::make_unique<HeartbeatSender>(beats, std::vector<int>{0}, 0.05);
  Words never(1);

  // Beats every 0.05 s: a wait of 2.5 s ends by its own deadline, not by a lost rank 0.
  RequestSet alive;
  irecv_words(alive, never, 0, 1, data, "data that never comes");
  EXPECT_THROW(alive.wait_all(2.5), PeerTimeout);
  alive.cancel_pending();

  // No more beats: a wait with a far deadline ends after about the limit (1 s), naming rank 0's
  // last activity.
  sender.reset();
  RequestSet lost;
  irecv_words(lost, never, 0, 2, data, "data that never comes");
  const auto start = Clock::now();
  try {
    lost.wait_all(60);
    FAIL() << "the wait ended";
  } catch (const LeaderLost &e) {
    EXPECT_TRUE(contains(e.what(), "rank 0 sent no heartbeat for")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(limit 1.0 s; its last beat, number")) << e.what();
    EXPECT_TRUE(contains(e.what(), "said it was evaluating")) << e.what();
  } catch (const PeerTimeout &e) {
    FAIL() << "the wait ran to its deadline: " << e.what();
  }
  EXPECT_GE(seconds_since(start), 0.8); // silence counts from the last beat, just before
  EXPECT_LT(seconds_since(start), 30);
  // The watch unhooked itself: the next wait ends by its own deadline.
  EXPECT_THROW(lost.wait_all(0.1), PeerTimeout);
  lost.cancel_pending();
}

TEST(Heartbeat, NoBeatAtAllIsALostLeader) {
  SelfComm beats;
  HeartbeatWatch watch(beats, 0, 0.2);
  EXPECT_NO_THROW(watch.check()); // within the limit
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  try {
    watch.check();
    FAIL() << "0.3 s without a beat passed a limit of 0.2 s";
  } catch (const LeaderLost &e) {
    EXPECT_TRUE(contains(e.what(), "said it was not beating yet")) << e.what();
  }
  EXPECT_NO_THROW(run_wait_hook()); // unhooked
}

// --- PipelinedReduce (src/run) ---------------------------------------------------------------

namespace {

// Three trainers upload a 40-element buffer in pieces of at most 6 to two aggregators; this
// process is aggregator 1 and receives every trainer's copy of its shard's pieces from itself.
// Uploads are small integers and weights powers of two, so every sum is exact in fp32 and bf16.
void check_pipelined_reduce(WireDType wire_dtype, const std::vector<float> &weights) {
  SelfComm comm;
  const ShardLayout layout = shard_layout(40, 6, 2);
  const std::vector<Piece> pieces = layout.pieces_of(1);
  ASSERT_GE(pieces.size(), 3u);
  const int64_t begin = layout.shard_begin[1], length = layout.shard_length(1);
  const protocol::WireFormat wire = protocol::wire_format(wire_dtype);
  const size_t trainers = weights.size();

  std::vector<std::vector<float>> uploads(trainers, std::vector<float>(40));
  std::vector<std::vector<uint16_t>> halves(trainers, std::vector<uint16_t>(40));
  for (size_t t = 0; t < trainers; ++t)
    for (size_t i = 0; i < 40; ++i) {
      uploads[t][i] = static_cast<float>((static_cast<int>(t * 7 + i * 3) % 41) - 20);
      uint32_t bits = 0;
      std::memcpy(&bits, &uploads[t][i], 4);
      halves[t][i] = static_cast<uint16_t>(bits >> 16); // bf16: exact for these integers
    }
  std::vector<float> expected(static_cast<size_t>(length), 0);
  for (size_t t = 0; t < trainers; ++t)
    for (int64_t k = 0; k < length; ++k)
      expected[static_cast<size_t>(k)] += weights[t] * uploads[t][static_cast<size_t>(begin + k)];

  ChunkReducer reducer(ReduceDevice::kCpu, trainers, length,
                       wire.bytes == 4 ? DType::kFloat32 : DType::kBFloat16, 1);
  run::PipelinedReduce pipe(reducer, pieces, begin, wire, 6, comm);
  RequestSet receives, sends;
  for (size_t t = 0; t < trainers; ++t)
    pipe.post(receives, t, 0, "trainer " + std::to_string(t));
  // A trainer's piece, as trainers send it (MPI matches one tag's messages in order, so the
  // copies of a piece fill the slots in the order of the sends).
  const auto send = [&](size_t t, const Piece &p) {
    const void *base = wire.bytes == 4 ? static_cast<const void *>(uploads[t].data())
                                       : static_cast<const void *>(halves[t].data());
    protocol::isend_upload_piece(sends, base, 0, p, wire, 6, 0, comm, "upload");
  };
  int weight_calls = 0;
  const auto weights_once = [&] {
    ++weight_calls;
    return weights;
  };
  std::vector<float> target(static_cast<size_t>(length), -1000);
  const auto reduced = [&](const Piece &p) {
    for (int64_t k = p.begin - begin; k < p.begin - begin + p.length; ++k)
      if (target[static_cast<size_t>(k)] != expected[static_cast<size_t>(k)])
        return false;
    return true;
  };

  // The last piece from every trainer, the first from all but the last trainer: only the last
  // piece is reduced, the others keep what `target` held.
  const Piece &first = pieces.front(), &last = pieces.back();
  for (size_t t = 0; t < trainers; ++t)
    send(t, last);
  for (size_t t = 0; t + 1 < trainers; ++t)
    send(t, first);
  ASSERT_TRUE(eventually([&] {
    receives.test_all();
    pipe.reduce_ready(receives, target.data(), weights_once);
    return reduced(last);
  }));
  for (int64_t k = 0; k < last.begin - begin; ++k)
    EXPECT_EQ(target[static_cast<size_t>(k)], -1000) << "element " << k << " reduced early";

  // The rest, in reverse piece order: the wait's progress reduces each piece as it completes.
  send(trainers - 1, first);
  for (size_t q = pieces.size() - 1; q-- > 1;)
    for (size_t t = 0; t < trainers; ++t)
      send(t, pieces[q]);
  receives.wait_all(30, [&] { pipe.reduce_ready(receives, target.data(), weights_once); });
  pipe.finish();
  sends.wait_all(30);
  EXPECT_EQ(target, expected);
  EXPECT_EQ(weight_calls, 1);
  EXPECT_GE(pipe.reduce_seconds(), 0);
}

} // namespace

TEST(PipelinedReduce, SumEqualsAPlainSumOfTheUploads) {
  check_pipelined_reduce(WireDType::kFp32, {1, 1, 1});
}

TEST(PipelinedReduce, WeightedSumOnTheBf16Wire) {
  check_pipelined_reduce(WireDType::kBf16, {0.5f, 0.25f, 2});
}
