// Rank 0's heartbeat (DESIGN §7 "Rank 0 lost: the heartbeat"): trainers and shard servers find a
// dead or stopped rank 0 within 2 x --straggler-timeout, even while rank 0 evaluates or writes a
// checkpoint between epochs, when it sends no round command for minutes.
//
// Rank 0 runs a thread that sends a tiny message (a sequence number and what rank 0's main loop
// is doing) to every other job rank every `period` seconds, on a communicator of its own (an
// MPI_Comm_dup of the job, made at start-up) so that beats never match a round's receives. This
// needs MPI_THREAD_MULTIPLE on rank 0 (MpiSession asks for it); where the MPI does not provide
// it, there is no heartbeat: a dead rank 0 is found only by the waits' own deadlines, at worst
// that of the wait for the next command (2 x timeout + 60 s).
//
// Every other rank keeps one receive for the next beat posted and tests it in every wait
// (RequestSet::wait_all, through a process-wide hook): no beat for `limit` seconds ends the wait
// with LeaderLost, naming rank 0 and its last activity. A SIGKILL or SIGSTOP of rank 0 stops
// the thread too. A main loop stuck while the thread beats is not found this way: the existing
// deadline for rank 0's next command (2 x timeout + 60 s) still catches it.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hetrain {

// What rank 0's main loop is doing, carried by each beat so a trainer can say it.
enum class LeaderActivity : int64_t { kStarting, kRound, kEvaluating, kCheckpointing, kEnding };
const char *activity_name(LeaderActivity activity);
// Rank 0's main loop says what it does; its heartbeat thread reads it.
void set_leader_activity(LeaderActivity activity);
LeaderActivity leader_activity();
// Sets an activity for a scope and restores the one before.
class LeaderActivityScope {
public:
  explicit LeaderActivityScope(LeaderActivity activity) : before_(leader_activity()) {
    set_leader_activity(activity);
  }
  ~LeaderActivityScope() { set_leader_activity(before_); }
  LeaderActivityScope(const LeaderActivityScope &) = delete;
  LeaderActivityScope &operator=(const LeaderActivityScope &) = delete;

private:
  LeaderActivity before_;
};

// Rank 0 stopped beating: ends the rank with kExitPeerLost (cli), never caught by the waits that
// tolerate a lost trainer.
class LeaderLost : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Beats every timeout/4; silence for 1.5 x timeout is a lost rank 0. The limit leaves a trainer
// that enters a wait just after rank 0 died within 2 x timeout, and a busy rank 0 whose thread is
// scheduled late (an oversubscribed host) more than a whole timeout of slack.
inline double heartbeat_period(double straggler_timeout) { return straggler_timeout / 4; }
inline double heartbeat_limit(double straggler_timeout) { return 1.5 * straggler_timeout; }

// True when MPI_Init_thread provided MPI_THREAD_MULTIPLE (MpiSession records it).
bool mpi_thread_multiple();
void set_mpi_thread_multiple(bool provided);

// Rank 0's side. `comm`: the heartbeat communicator; `peers`: the ranks of `comm` to beat.
class HeartbeatSender {
public:
  HeartbeatSender(MPI_Comm comm, std::vector<int> peers, double period_seconds);
  ~HeartbeatSender(); // stops the thread; beats still in flight are let go
  HeartbeatSender(const HeartbeatSender &) = delete;
  HeartbeatSender &operator=(const HeartbeatSender &) = delete;
  // A peer that left the job (a planned leave): no more beats go to it.
  void forget(int peer);

private:
  void beat_all();
  void loop();

  MPI_Comm comm_;
  std::vector<int> peers_;
  std::vector<MPI_Request> pending_;
  std::vector<int64_t> words_; // 2 per peer: sequence, activity (a buffer per pending send)
  std::vector<bool> gone_;
  std::chrono::duration<double> period_;
  int64_t sequence_ = 0;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

// A trainer's or shard server's side: installs itself as the wait hook until destroyed.
class HeartbeatWatch {
public:
  HeartbeatWatch(MPI_Comm comm, int leader, double limit_seconds);
  ~HeartbeatWatch();
  HeartbeatWatch(const HeartbeatWatch &) = delete;
  HeartbeatWatch &operator=(const HeartbeatWatch &) = delete;
  // Takes every beat that has arrived; throws LeaderLost when none came for the limit.
  void check();

private:
  MPI_Comm comm_;
  int leader_;
  std::chrono::duration<double> limit_;
  std::chrono::steady_clock::time_point last_;
  int64_t words_[2] = {0, 0}; // the posted receive's buffer
  int64_t beats_ = 0, last_sequence_ = 0, last_activity_ = 0;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

// The process-wide hook RequestSet::wait_all calls on every poll (nullptr: none).
using WaitHook = void (*)();
void set_wait_hook(WaitHook hook);
void run_wait_hook();

} // namespace hetrain
