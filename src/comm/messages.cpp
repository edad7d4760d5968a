#include "hetrain/comm/messages.h"

#include "hetrain/comm/check_mpi.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace hetrain {
namespace {

constexpr int64_t kMagic = 0x4854; // "HT"

const char *type_name(MessageType type) {
  switch (type) {
  case MessageType::kRoundCommand:
    return "round command";
  case MessageType::kRoundStats:
    return "round statistics";
  case MessageType::kShardSetup:
    return "shard setup";
  case MessageType::kShardCommand:
    return "shard command";
  case MessageType::kShardAck:
    return "shard acknowledgement";
  case MessageType::kVerdict:
    return "admission verdict";
  case MessageType::kOptimizerState:
    return "optimizer state header";
  }
  return "unknown message";
}

int64_t header(MessageType type) {
  return kMagic << 32 | static_cast<int64_t>(type) << 16 | kMessageVersion;
}

int64_t bits(double value) {
  int64_t b = 0;
  std::memcpy(&b, &value, sizeof b);
  return b;
}
double from_bits(int64_t b) {
  double value = 0;
  std::memcpy(&value, &b, sizeof value);
  return value;
}

// One field of a message's fields() is one word: a double as its bits, anything else (a bool,
// an integer, an enum) as its value.
template <class T> int64_t to_word(const T &value) {
  static_assert(std::is_same_v<T, double> || std::is_integral_v<T> || std::is_enum_v<T>,
                "a message field is a bool, an integer, an enum or a double");
  if constexpr (std::is_same_v<T, double>)
    return bits(value);
  else
    return static_cast<int64_t>(value);
}
template <class T> void from_word(int64_t word, T &value) {
  if constexpr (std::is_same_v<T, double>)
    value = from_bits(word);
  else if constexpr (std::is_same_v<T, bool>)
    value = word != 0;
  else
    value = static_cast<T>(word);
}

// Writes the header, then words in order.
class Writer {
public:
  Writer(MessageType type, size_t length) : words_(length, 0) { words_[0] = header(type); }
  template <class T> Writer &put(const T &value) {
    words_.at(at_++) = to_word(value);
    return *this;
  }
  // Every field of `message`, in the order of Message::fields().
  template <class Message> Writer &put_fields(const Message &message) {
    Message::fields([&](auto field) { put(message.*field); });
    return *this;
  }
  Words done() { return std::move(words_); }

private:
  Words words_;
  size_t at_ = 1;
};

// Checks the header and length, then reads words in order.
class Reader {
public:
  Reader(const Words &words, MessageType type, size_t length) : words_(words) {
    const char *name = type_name(type);
    if (words.empty() || words[0] >> 32 != kMagic)
      throw ProtocolError(
          fmt::format("a {} without hetrain's header: not a hetrain message", name));
    const auto got_type = static_cast<MessageType>((words[0] >> 16) & 0xffff);
    if (got_type != type)
      throw ProtocolError(fmt::format("expected a {}, got a {}", name, type_name(got_type)));
    if ((words[0] & 0xffff) != kMessageVersion)
      throw ProtocolError(fmt::format("a {} of protocol version {}, this hetrain speaks {}", name,
                                      words[0] & 0xffff, kMessageVersion));
    if (words.size() != length)
      throw ProtocolError(fmt::format("a {} of {} words, expected {}", name, words.size(), length));
  }
  int64_t i64() { return words_[at_++]; }
  // A Message with every field of Message::fields() read, in order.
  template <class Message> Message fields() {
    Message message;
    Message::fields([&](auto field) { from_word(i64(), message.*field); });
    return message;
  }
  size_t left() const { return words_.size() - at_; }

private:
  const Words &words_;
  size_t at_ = 1;
};

} // namespace

Words encode(const RoundCommand &c) {
  return Writer(MessageType::kRoundCommand, RoundCommand::kWords).put_fields(c).done();
}
RoundCommand decode_round_command(const Words &words) {
  const auto c =
      Reader(words, MessageType::kRoundCommand, RoundCommand::kWords).fields<RoundCommand>();
  if (int64_t(c.kind) < int64_t(RoundCommand::Kind::kRound) ||
      int64_t(c.kind) > int64_t(RoundCommand::Kind::kLoadOptimizer))
    throw ProtocolError(fmt::format("a round command of unknown kind {}", int64_t(c.kind)));
  return c;
}

Words encode(const RoundStats &s) {
  return Writer(MessageType::kRoundStats, RoundStats::kWords).put_fields(s).done();
}
RoundStats decode_round_stats(const Words &words) {
  return Reader(words, MessageType::kRoundStats, RoundStats::kWords).fields<RoundStats>();
}

Words encode(const ShardSetup &s, int world_size) {
  const size_t trainers = s.job_ranks.size();
  if (s.world_ranks.size() != trainers || trainers > static_cast<size_t>(world_size))
    throw std::logic_error("ShardSetup: trainer lists of other lengths or longer than the world");
  Writer w(MessageType::kShardSetup, ShardSetup::words(world_size));
  w.put_fields(s).put(static_cast<int64_t>(trainers));
  for (size_t i = 0; i < trainers; ++i)
    w.put(s.job_ranks[i]).put(s.world_ranks[i]);
  return w.done();
}
ShardSetup decode_shard_setup(const Words &words) {
  const size_t none = ShardSetup::words(0); // the length with room for no trainer
  if (words.size() < none || (words.size() - none) % 2 != 0)
    throw ProtocolError(fmt::format("a shard setup of {} words", words.size()));
  Reader r(words, MessageType::kShardSetup, words.size());
  ShardSetup s = r.fields<ShardSetup>();
  const int64_t trainers = r.i64();
  if (trainers < 0 || static_cast<uint64_t>(trainers) > r.left() / 2) // no 2 * trainers: overflow
    throw ProtocolError(
        fmt::format("a shard setup naming {} trainers in {} words", trainers, words.size()));
  for (int64_t i = 0; i < trainers; ++i) {
    s.job_ranks.push_back(static_cast<int>(r.i64()));
    s.world_ranks.push_back(static_cast<int>(r.i64()));
  }
  return s;
}

Words encode(const ShardCommand &c, size_t trainers) {
  Writer w(MessageType::kShardCommand, ShardCommand::words(trainers));
  w.put_fields(c);
  // One word per trainer: bit 0 uploading, bit 1 refresh, bit 2 receiving.
  const auto bit = [](const std::vector<bool> &v, size_t i, int64_t b) {
    return i < v.size() && v[i] ? b : int64_t{0};
  };
  for (size_t i = 0; i < trainers; ++i)
    w.put(bit(c.uploading, i, 1) | bit(c.refresh, i, 2) | bit(c.receiving, i, 4));
  for (size_t i = 0; i < trainers; ++i)
    w.put(i < c.trainer_samples.size() ? c.trainer_samples[i] : 0);
  return w.done();
}
ShardCommand decode_shard_command(const Words &words) {
  if (words.size() < ShardCommand::words(0))
    throw ProtocolError(fmt::format("a shard command of {} words", words.size()));
  Reader r(words, MessageType::kShardCommand, words.size());
  ShardCommand c = r.fields<ShardCommand>();
  if (r.left() % 2 != 0)
    throw ProtocolError(fmt::format("a shard command of {} words (two per trainer)", words.size()));
  const size_t trainers = r.left() / 2;
  for (size_t i = 0; i < trainers; ++i) {
    const int64_t flags = r.i64();
    if (flags < 0 || flags > 7)
      throw ProtocolError(fmt::format("a shard command with trainer flags {}", flags));
    c.uploading.push_back((flags & 1) != 0);
    c.refresh.push_back((flags & 2) != 0);
    c.receiving.push_back((flags & 4) != 0);
  }
  for (size_t i = 0; i < trainers; ++i) {
    c.trainer_samples.push_back(r.i64());
    if (c.trainer_samples.back() < 0)
      throw ProtocolError(
          fmt::format("a shard command with {} samples for a trainer", c.trainer_samples.back()));
  }
  if (c.kind != ShardCommand::Kind::kRound && c.kind != ShardCommand::Kind::kStop &&
      c.kind != ShardCommand::Kind::kGather)
    throw ProtocolError(fmt::format("a shard command of unknown kind {}", int64_t(c.kind)));
  return c;
}

Words encode(const ShardAck &a) {
  return Writer(MessageType::kShardAck, ShardAck::kWords).put_fields(a).done();
}
ShardAck decode_shard_ack(const Words &words) {
  return Reader(words, MessageType::kShardAck, ShardAck::kWords).fields<ShardAck>();
}

Words encode(const OptimizerStateHeader &h) {
  return Writer(MessageType::kOptimizerState, OptimizerStateHeader::kWords).put_fields(h).done();
}
OptimizerStateHeader decode_optimizer_state_header(const Words &words) {
  return Reader(words, MessageType::kOptimizerState, OptimizerStateHeader::kWords)
      .fields<OptimizerStateHeader>();
}

Words encode(const VerdictMessage &v) {
  Words words = Writer(MessageType::kVerdict, VerdictMessage::kWords).put_fields(v).done();
  const size_t room = VerdictMessage::kReasonWords * sizeof(int64_t) - 1; // keeps a final 0
  std::memcpy(words.data() + fixed_words<VerdictMessage>(), v.reason.data(),
              std::min(room, v.reason.size()));
  return words;
}
VerdictMessage decode_verdict(const Words &words) {
  VerdictMessage v =
      Reader(words, MessageType::kVerdict, VerdictMessage::kWords).fields<VerdictMessage>();
  const char *text = reinterpret_cast<const char *>(words.data() + fixed_words<VerdictMessage>());
  v.reason.assign(text, strnlen(text, VerdictMessage::kReasonWords * sizeof(int64_t)));
  return v;
}

void isend_words(RequestSet &set, const Words &words, int peer, int tag, MPI_Comm comm,
                 const std::string &what) {
  MPI_Request r;
  CHECK_MPI(
      MPI_Isend(words.data(), static_cast<int>(words.size()), MPI_INT64_T, peer, tag, comm, &r));
  set.add(r, peer, what);
}
void irecv_words(RequestSet &set, Words &words, int peer, int tag, MPI_Comm comm,
                 const std::string &what) {
  MPI_Request r;
  CHECK_MPI(
      MPI_Irecv(words.data(), static_cast<int>(words.size()), MPI_INT64_T, peer, tag, comm, &r));
  set.add(r, peer, what);
}
void send_one(const Words &words, int peer, int tag, MPI_Comm comm, double timeout,
              const std::string &what) {
  RequestSet set;
  isend_words(set, words, peer, tag, comm, what);
  set.wait_all(timeout);
}
Words receive_one(size_t length, int peer, int tag, MPI_Comm comm, double timeout,
                  const std::string &what) {
  Words words(length);
  RequestSet set;
  irecv_words(set, words, peer, tag, comm, what);
  set.wait_all(timeout);
  return words;
}

void Inbox::post() {
  full_ = false;
  CHECK_MPI(MPI_Irecv(words_.data(), static_cast<int>(words_.size()), MPI_INT64_T, peer_, tag_,
                      comm_, &request_));
}
bool Inbox::poll() {
  if (!full_ && request_ != MPI_REQUEST_NULL) {
    int flag = 0;
    CHECK_MPI(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE));
    full_ = flag != 0;
  }
  return full_;
}
void Inbox::wait(double timeout, const std::string &what) {
  if (poll())
    return;
  RequestSet set;
  set.add(request_, peer_, what);
  set.wait_all(timeout); // on a timeout request_ still names the receive, and cancel() ends it
  request_ = MPI_REQUEST_NULL; // completed (and freed) through the set
  full_ = true;
}
void Inbox::cancel() {
  if (!full_ && request_ != MPI_REQUEST_NULL) {
    MPI_Cancel(&request_);
    MPI_Request_free(&request_);
  }
  request_ = MPI_REQUEST_NULL;
}

} // namespace hetrain
