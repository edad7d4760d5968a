#include "hetrain/comm/heartbeat.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/log.h"

#include <fmt/format.h>

namespace hetrain {

namespace {
constexpr int kTagBeat = 1;
std::atomic<bool> thread_multiple{false};
std::atomic<WaitHook> wait_hook{nullptr};
std::atomic<int64_t> activity{0};
HeartbeatWatch *active_watch = nullptr; // main thread only
void check_active_watch() {
  if (active_watch)
    active_watch->check();
}
} // namespace

const char *activity_name(LeaderActivity activity) {
  switch (activity) {
  case LeaderActivity::kStarting:
    return "starting";
  case LeaderActivity::kRound:
    return "running rounds";
  case LeaderActivity::kEvaluating:
    return "evaluating";
  case LeaderActivity::kCheckpointing:
    return "writing a checkpoint";
  case LeaderActivity::kEnding:
    return "ending";
  }
  return "unknown";
}

void set_leader_activity(LeaderActivity a) { activity.store(static_cast<int64_t>(a)); }
LeaderActivity leader_activity() { return static_cast<LeaderActivity>(activity.load()); }

bool mpi_thread_multiple() { return thread_multiple.load(); }
void set_mpi_thread_multiple(bool provided) { thread_multiple.store(provided); }

void set_wait_hook(WaitHook hook) { wait_hook.store(hook); }
void run_wait_hook() {
  if (WaitHook hook = wait_hook.load())
    hook();
}

HeartbeatSender::HeartbeatSender(MPI_Comm comm, std::vector<int> peers, double period_seconds)
    : comm_(comm), peers_(std::move(peers)), pending_(peers_.size(), MPI_REQUEST_NULL),
      words_(2 * peers_.size(), 0), gone_(peers_.size(), false), period_(period_seconds) {
  thread_ = std::thread([this] { loop(); });
}

HeartbeatSender::~HeartbeatSender() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_one();
  thread_.join();
  for (MPI_Request &r : pending_)
    if (r != MPI_REQUEST_NULL)
      MPI_Request_free(&r); // a beat to a rank that has left: nothing waits for it
}

void HeartbeatSender::forget(int peer) {
  std::lock_guard<std::mutex> lock(mutex_); // beat_all runs under it
  for (size_t i = 0; i < peers_.size(); ++i)
    if (peers_[i] == peer)
      gone_[i] = true;
}

void HeartbeatSender::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    beat_all();
    stop_cv_.wait_for(lock, period_, [this] { return stop_; });
  }
}

// One beat to every peer whose previous beat has left; a peer whose calls fail (a trainer that
// died, under --on-trainer-loss continue) is said once and then left alone. An exception must
// not leave this thread: it would end rank 0 with std::terminate.
void HeartbeatSender::beat_all() {
  ++sequence_;
  for (size_t i = 0; i < peers_.size(); ++i) {
    if (gone_[i])
      continue;
    try {
      if (pending_[i] != MPI_REQUEST_NULL) {
        int flag = 0;
        CHECK_MPI(MPI_Test(&pending_[i], &flag, MPI_STATUS_IGNORE));
        if (!flag)
          continue; // the last beat is still on its way: the peer is slow, not owed two
      }
      words_[2 * i] = sequence_;
      words_[2 * i + 1] = activity.load();
      CHECK_MPI(
          MPI_Isend(&words_[2 * i], 2, MPI_INT64_T, peers_[i], kTagBeat, comm_, &pending_[i]));
    } catch (const std::exception &e) {
      gone_[i] = true;
      log_warn("heartbeat: no more beats to job rank {}: {}", peers_[i], e.what());
    }
  }
}

HeartbeatWatch::HeartbeatWatch(MPI_Comm comm, int leader, double limit_seconds)
    : comm_(comm), leader_(leader), limit_(limit_seconds), last_(std::chrono::steady_clock::now()) {
  CHECK_MPI(MPI_Irecv(words_, 2, MPI_INT64_T, leader_, kTagBeat, comm_, &request_));
  active_watch = this;
  set_wait_hook(&check_active_watch);
}

HeartbeatWatch::~HeartbeatWatch() {
  set_wait_hook(nullptr);
  active_watch = nullptr;
  if (request_ != MPI_REQUEST_NULL) {
    MPI_Cancel(&request_);
    MPI_Request_free(&request_);
  }
}

void HeartbeatWatch::check() {
  const auto now = std::chrono::steady_clock::now();
  for (;;) { // beats queued while this rank computed count as arrived now
    int flag = 0;
    CHECK_MPI(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE));
    if (!flag)
      break;
    last_ = now;
    ++beats_;
    last_sequence_ = words_[0];
    last_activity_ = words_[1];
    CHECK_MPI(MPI_Irecv(words_, 2, MPI_INT64_T, leader_, kTagBeat, comm_, &request_));
  }
  const std::chrono::duration<double> silent = now - last_;
  if (silent <= limit_)
    return;
  // Unhooked first: the cleanup on the way out waits too.
  set_wait_hook(nullptr);
  active_watch = nullptr;
  throw LeaderLost(fmt::format(
      "rank 0 sent no heartbeat for {:.1f} s (limit {:.1f} s; its last beat, number {}, said "
      "it was {}): rank 0 is dead or stopped",
      silent.count(), limit_.count(), last_sequence_,
      beats_ ? activity_name(static_cast<LeaderActivity>(last_activity_)) : "not beating yet"));
}

} // namespace hetrain
