// The control messages of a distributed job (DESIGN §5), typed and versioned. Each travels as a
// fixed number of 64-bit words: word 0 is a header (magic "HT", the message type and the protocol
// version), the fields follow in the order of the message's fields() below; doubles travel as
// their bits, bools as 0 or 1, enums and integers as their value. Both
// sides know every message's length before it arrives (from the world size or the number of
// trainers), so a receive can always be posted ahead. decode() refuses a message of another type,
// version or length with ProtocolError naming what it got, instead of misreading it.
//
// The bulk data (gradient pieces, parameters, buffers, timeline spans) travels as plain arrays
// (mpi_comm.h's *_chunks); these messages say what that data is for.
#pragma once

#include "hetrain/comm/mpi_comm.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace hetrain {

using Words = std::vector<int64_t>;

// 2: RoundStats.data_wait_seconds; 3: RoundCommand.members, ShardCommand.uploading (--host-reduce);
// 4: RoundCommand kOut, ShardCommand refresh and receiving (a trainer left out of the plan);
// 5: RoundCommand kSaveOptimizer and kLoadOptimizer, OptimizerStateHeader (a trainer's own
// optimizer in checkpoints), RoundCommand.round_steps (local steps by speed);
// 6: ShardCommand.trainer_samples (params and diloco over --aggregators),
// RoundStats.wire_relative_error; 7: RoundStats.overlapped_steps (--sync-overlap);
// 8: a trainer out of the plan answers a measurement with {samples, seconds, signal}
// (kTagOutSpeed; a planned leave while out)
inline constexpr int64_t kMessageVersion = 8;

enum class MessageType : int64_t {
  kRoundCommand = 1,
  kRoundStats = 2,
  kShardSetup = 3,
  kShardCommand = 4,
  kShardAck = 5,
  kVerdict = 6,
  kOptimizerState = 7
};

// A message that is not what the receiver expected: another type, version or length.
class ProtocolError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Each message lists its fixed fields once, in wire order, in a static `fields(visit)` that calls
// `visit(member pointer)` once per field (the style of config/options.h). encode(), the decoders
// and the word counts all walk that list, so a field is added in one line. A field is a bool, an
// integer, an enum or a double: one word each. What varies in length (the trainer lists, the
// per-trainer flags, the verdict's text) follows the fixed fields (messages.cpp).
//
// The words of a message's header and fixed fields, counted from its fields().
template <class Message> constexpr size_t fixed_words() {
  size_t words = 1; // the header
  Message::fields([&words](auto) { ++words; });
  return words;
}

// --- rank 0 -> trainer, once per round, and at the end --------------------------------------
// kRound and kSkip are followed by the round's parameters; kOut by nothing: the trainer is out of
// the plan and waits for its next command (rank 0 repeats kOut now and then, so that the wait
// keeps a deadline). A kOut with count > 0 asks it to time forward and backward over that many
// samples and send rank 0 {samples, seconds} (kTagOutSpeed), so that a re-plan can see it
// recover. A trainer that was out (or has not worked yet) receives the current
// parameters before it acts on its next kRound or kSkip (DESIGN §5, "A trainer out of the plan").
// --sync params/diloco, where each trainer steps its own optimizer: kSaveOptimizer (between rounds,
// before a checkpoint) asks it to send that optimizer's state to rank 0, kLoadOptimizer (before the
// first round of a resumed run) says that rank 0 sends it one to load; both as an
// OptimizerStateHeader and the state tensors on kTagTrainerState (DESIGN §8).
struct RoundCommand {
  enum class Kind : int64_t {
    kRound = 1,
    kSkip = 2,
    kStop = 3,
    kOut = 4,
    kSaveOptimizer = 5,
    kLoadOptimizer = 6
  };
  Kind kind = Kind::kSkip;
  int64_t epoch = 0;          // 0-based
  int64_t offset = 0;         // first position in the epoch's order this trainer computes
  int64_t count = 0;          // samples it computes (0 for kSkip)
  int64_t global_step = 0;    // optimizer steps before this round
  int64_t local_steps = 1;    // optimizer steps in the round (--sync params: local steps)
  int64_t attempt = 0;        // > 0: the round is redone after a trainer was lost
  bool send_timeline = false; // kStop: send your --timeline spans to rank 0 now
  // --host-reduce, to a group's leader: bit i set = its member i works this round and sends its
  // sum here; the leader uploads the group's sum (also with kSkip, when only members work).
  uint64_t members = 0;
  // --sync params/diloco: the steps the round counts for (the fastest trainer's local steps); a
  // slower trainer takes fewer (local_steps) and spreads them over this span of the schedule.
  int64_t round_steps = 1;
  template <class Visit> static constexpr void fields(Visit &&visit) {
    using M = RoundCommand;
    visit(&M::kind);
    visit(&M::epoch);
    visit(&M::offset);
    visit(&M::count);
    visit(&M::global_step);
    visit(&M::local_steps);
    visit(&M::attempt);
    visit(&M::send_timeline);
    visit(&M::members);
    visit(&M::round_steps);
  }
  static const size_t kWords; // the header and fields()
};
inline constexpr size_t RoundCommand::kWords = fixed_words<RoundCommand>();
Words encode(const RoundCommand &command);
RoundCommand decode_round_command(const Words &words);

// --- trainer -> rank 0, after its part of a round --------------------------------------------
struct RoundStats {
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t samples = 0;
  double compute_seconds = 0;
  int stop_signal = 0;     // SIGTERM/SIGUSR1 seen by the trainer (rank 0 decides when to stop)
  int64_t micro_batch = 0; // in use: below --micro-batch after running out of device memory
  // Its GPU as NVML sees it; `gpu_valid` false on a CPU trainer or when NVML does not answer.
  bool gpu_valid = false;
  double gpu_utilization = 0, gpu_memory_used = 0, gpu_temperature = 0, gpu_power = 0;
  double data_wait_seconds = 0; // of compute_seconds, waiting for the loader's next batch
  // Relative L2 error of its upload after rounding to --wire-dtype; -1 where not measured
  double wire_relative_error = -1;
  // --sync-overlap: local steps computed while the previous round's sync was in flight (all of
  // the round's, or 0)
  int64_t overlapped_steps = 0;
  template <class Visit> static constexpr void fields(Visit &&visit) {
    using M = RoundStats;
    visit(&M::loss_sum);
    visit(&M::correct);
    visit(&M::samples);
    visit(&M::compute_seconds);
    visit(&M::stop_signal);
    visit(&M::micro_batch);
    visit(&M::gpu_valid);
    visit(&M::gpu_utilization);
    visit(&M::gpu_memory_used);
    visit(&M::gpu_temperature);
    visit(&M::gpu_power);
    visit(&M::data_wait_seconds);
    visit(&M::wire_relative_error);
    visit(&M::overlapped_steps);
  }
  static const size_t kWords; // the header and fields()
};
inline constexpr size_t RoundStats::kWords = fixed_words<RoundStats>();
Words encode(const RoundStats &stats);
RoundStats decode_round_stats(const Words &words);

// --- rank 0 -> shard server (--aggregators A), once after admission ---------------------------
// Then the server's shard of the parameters and of every optimizer state tensor follow as data.
struct ShardSetup {
  int64_t optimizer_steps = 0;
  std::vector<int> job_ranks, world_ranks; // of the trainers, in the same order
  template <class Visit> static constexpr void fields(Visit &&visit) {
    visit(&ShardSetup::optimizer_steps);
  }
  // After fields(): the number of trainers, then {job rank, world rank} of each, then zeros up to
  // room for every rank of the world.
  static size_t words(int world_size) {
    return fixed_words<ShardSetup>() + 1 + 2 * static_cast<size_t>(world_size);
  }
};
Words encode(const ShardSetup &setup, int world_size);
ShardSetup decode_shard_setup(const Words &words);

// --- rank 0 -> shard server, per round or to gather or stop -----------------------------------
struct ShardCommand {
  enum class Kind : int64_t { kRound = 1, kStop = 3, kGather = 4 };
  Kind kind = Kind::kStop;
  // kRound: steps before this round; kGather: rank 0's position (a round the server applied from
  // here on was not completed, and is undone)
  int64_t global_step = 0;
  int64_t samples = 0; // kRound: samples in the round (the weights are 1/samples)
  double lr = 0;       // kRound: learning rate of the step
  // kRound: per trainer (setup order), whether it uploads this round: it works and is in no
  // --host-reduce group, or it leads a group of which someone works (DESIGN §6)
  std::vector<bool> uploading;
  // kRound: per trainer, whether it gets this shard's parameters before the round (it was out of
  // the plan, or has not worked yet) and after it (it is in the round: not told kOut)
  std::vector<bool> refresh, receiving;
  // kRound, --sync params/diloco: per trainer, the samples of its part of the round (the weight of
  // its upload in the mean is samples / this round's samples); 0 for one that does not work.
  std::vector<int64_t> trainer_samples;
  template <class Visit> static constexpr void fields(Visit &&visit) {
    using M = ShardCommand;
    visit(&M::kind);
    visit(&M::global_step);
    visit(&M::samples);
    visit(&M::lr);
  }
  // After fields(): one word per trainer, bit 0 uploading, bit 1 refresh, bit 2 receiving; then
  // one word per trainer, its samples.
  static size_t words(size_t trainers) { return fixed_words<ShardCommand>() + 2 * trainers; }
};
Words encode(const ShardCommand &command, size_t trainers);
ShardCommand decode_shard_command(const Words &words);

// --- shard server -> rank 0, after it stepped its shard --------------------------------------
struct ShardAck {
  double receive_seconds = 0, reduce_seconds = 0, step_seconds = 0;
  int64_t bytes_received = 0;
  template <class Visit> static constexpr void fields(Visit &&visit) {
    using M = ShardAck;
    visit(&M::receive_seconds);
    visit(&M::reduce_seconds);
    visit(&M::step_seconds);
    visit(&M::bytes_received);
  }
  static const size_t kWords; // the header and fields()
};
inline constexpr size_t ShardAck::kWords = fixed_words<ShardAck>();
Words encode(const ShardAck &ack);
ShardAck decode_shard_ack(const Words &words);

// --- trainer <-> rank 0: a trainer's own optimizer (--sync params/diloco) --------------------
// Followed on the same tag by `tensors` float32 arrays of `numel` elements each, in the order
// Optimizer::state() lists them.
struct OptimizerStateHeader {
  int64_t steps = 0;   // Optimizer::steps_taken() (Adam's bias correction counts them)
  int64_t tensors = 0; // state tensors that follow
  int64_t numel = 0;   // elements of each
  template <class Visit> static constexpr void fields(Visit &&visit) {
    using M = OptimizerStateHeader;
    visit(&M::steps);
    visit(&M::tensors);
    visit(&M::numel);
  }
  static const size_t kWords; // the header and fields()
};
inline constexpr size_t OptimizerStateHeader::kWords = fixed_words<OptimizerStateHeader>();
Words encode(const OptimizerStateHeader &header);
OptimizerStateHeader decode_optimizer_state_header(const Words &words);

// --- rank 0 -> every reporting rank: the admission verdict -----------------------------------
struct VerdictMessage {
  bool admitted = false;
  std::string reason; // why not (cut to what fits)
  template <class Visit> static constexpr void fields(Visit &&visit) {
    visit(&VerdictMessage::admitted);
  }
  // After fields(): the reason's bytes, 0-terminated, in 64 words (512 bytes).
  static constexpr size_t kReasonWords = 64;
  static const size_t kWords; // the header, fields() and the reason
};
inline constexpr size_t VerdictMessage::kWords =
    fixed_words<VerdictMessage>() + VerdictMessage::kReasonWords;
Words encode(const VerdictMessage &verdict);
VerdictMessage decode_verdict(const Words &words);

// --- moving messages: beside RequestSet -------------------------------------------------------
// Posts the send of `words` (which must stay alive until `set` completes) / the receive into
// `words` (already sized to the expected length) as one request of `set`.
void isend_words(RequestSet &set, const Words &words, int peer, int tag, MPI_Comm comm,
                 const std::string &what);
void irecv_words(RequestSet &set, Words &words, int peer, int tag, MPI_Comm comm,
                 const std::string &what);
// Sends one message and waits for it to leave / receives one message of `length` words; both
// throw PeerTimeout naming `peer` and `what` after `timeout` seconds.
void send_one(const Words &words, int peer, int tag, MPI_Comm comm, double timeout,
              const std::string &what);
Words receive_one(size_t length, int peer, int tag, MPI_Comm comm, double timeout,
                  const std::string &what);

// The next message from `peer` (rank 0), received into a receive that is always posted: the sender
// can then interrupt any wait of the receiver (a stop while parameters are due, a gather while a
// shard server waits for gradients), not only the wait for the next round.
class Inbox {
public:
  Inbox(MPI_Comm comm, int peer, int tag, size_t length)
      : comm_(comm), peer_(peer), tag_(tag), words_(length) {}
  ~Inbox() { cancel(); }
  Inbox(const Inbox &) = delete;
  Inbox &operator=(const Inbox &) = delete;
  void post();
  // True once the posted message has arrived (then words() holds it until the next post()).
  bool poll();
  // Waits for the message; PeerTimeout naming the peer and `what` after `timeout` seconds.
  void wait(double timeout, const std::string &what);
  const Words &words() const { return words_; }
  // A receive still posted is cancelled (at the end, or by the destructor).
  void cancel();

private:
  MPI_Comm comm_;
  int peer_, tag_;
  Words words_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool full_ = false;
};

} // namespace hetrain
