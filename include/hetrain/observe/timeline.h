// --timeline FILE.json: a Chrome trace (chrome://tracing, Perfetto) with one row per rank and a
// span for each thing a rank spends time on (DESIGN §9). Ranks record their own spans in memory;
// trainers send theirs to rank 0 when the job ends, and rank 0 writes the file once. Times are
// wall-clock microseconds (system_clock), so rows of different hosts line up as well as their
// clocks agree (NTP: about a millisecond on a LAN).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

enum class Span : int {
  kCompute = 0, // forward + backward (trainer)
  kSend,        // posting and completing the upload (trainer)
  kWait,        // waiting for parameters and the next command (trainer)
  kReceive,     // waiting for the trainers' uploads (rank 0)
  kReduce,      // averaging chunks (rank 0)
  kStep,        // optimizer step (rank 0)
  kBroadcast,   // sending parameters (rank 0)
  kCheckpoint,  // writing a checkpoint (rank 0)
  kEvaluate,    // test-set evaluation (rank 0)
};
const char *span_name(Span span);

// Microseconds since the epoch, for span starts and ends.
double wall_microseconds();

class Timeline {
public:
  explicit Timeline(bool enabled = false) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // Records [start_us, end_us) for this rank; nothing when disabled.
  void add(Span span, double start_us, double end_us, int64_t round = -1);

  // Spans as a flat array of doubles (span, start, duration, round), for one MPI message.
  std::vector<double> encode() const;
  // Adds another rank's encoded spans (throws std::invalid_argument on a malformed array).
  void add_encoded(int rank, const std::vector<double> &encoded);

  // The Chrome trace JSON: a process per rank (named "rank r (host)" from `rank_names`, index =
  // rank), its spans as complete ("X") events on one thread, sorted by start.
  std::string to_json(const std::vector<std::string> &rank_names) const;
  // Writes to_json() atomically; UserError when the path cannot be written.
  void write(const std::string &path, const std::vector<std::string> &rank_names) const;

  size_t size() const { return events_.size(); }

private:
  struct Event {
    int rank;
    Span span;
    double start_us, duration_us;
    int64_t round;
  };
  bool enabled_;
  int own_rank_ = 0;
  std::vector<Event> events_;

public:
  void set_rank(int rank) { own_rank_ = rank; }
};

// Measures one span from construction to destruction (or to end()).
class ScopedSpan {
public:
  ScopedSpan(Timeline &timeline, Span span, int64_t round = -1)
      : timeline_(timeline), span_(span), round_(round), start_(wall_microseconds()) {}
  ~ScopedSpan() { end(); }
  void end() {
    if (!ended_)
      timeline_.add(span_, start_, wall_microseconds(), round_);
    ended_ = true;
  }
  ScopedSpan(const ScopedSpan &) = delete;
  ScopedSpan &operator=(const ScopedSpan &) = delete;

private:
  Timeline &timeline_;
  Span span_;
  int64_t round_;
  double start_;
  bool ended_ = false;
};

} // namespace hetrain
