#include "hetrain/comm/mpi_comm.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/heartbeat.h"
#include "hetrain/common/check.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include <fmt/format.h>

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace hetrain {

namespace detail {
void fail_mpi(int code, const char *call, const char *file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    fmt::format_to_n(text, sizeof(text) - 1, "MPI error code {}", code);
  fail_library("MPI", text, call, file, line);
}
} // namespace detail

MpiSession::MpiSession(int *argc, char ***argv, bool ranks_may_leave) {
  // Open MPI reads its parameters from the environment during MPI_Init; an explicit setting by
  // the user (OMPI_MCA_async_mpi_finalize=0) is kept. Other MPIs ignore the variable.
  if (ranks_may_leave)
    setenv("OMPI_MCA_async_mpi_finalize", "1", /*overwrite=*/0);
  int provided = 0;
  // MULTIPLE for rank 0's heartbeat thread (comm/heartbeat.h); every other rank calls MPI from
  // its main thread only. An MPI that offers less runs without the heartbeat.
  CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  set_mpi_thread_multiple(provided >= MPI_THREAD_MULTIPLE);
  CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  set_process_rank(rank_, size_);
}

MpiSession::~MpiSession() {
  if (!finalized_)
    finalize(kExitInternal, 10);
}

void MpiSession::finalize(int exit_code, double deadline_seconds) {
  finalized_ = true;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized)
    return;
  // A watchdog thread rather than a polling loop: MPI_Finalize has no non-blocking form.
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(mutex);
    if (done_cv.wait_for(lock, std::chrono::duration<double>(deadline_seconds),
                         [&] { return done; }))
      return;
    log_warn("MPI_Finalize has not returned after {:.0f} s (the launcher's closing fence waits "
             "for every rank, and one may be gone); ending without it, exit code {}",
             deadline_seconds, exit_code);
    std::fflush(nullptr);
    std::_Exit(exit_code);
  });
  MPI_Finalize();
  {
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
  }
  done_cv.notify_one();
  watchdog.join();
}

NodeLocal node_local(MPI_Comm comm, int role) {
  MPI_Comm local;
  CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local));
  NodeLocal out;
  CHECK_MPI(MPI_Comm_rank(local, &out.rank));
  CHECK_MPI(MPI_Comm_size(local, &out.size));
  // Each rank's role and CPU affinity mask, as bytes, to every rank of the node.
  int world_rank = 0;
  CHECK_MPI(MPI_Comm_rank(comm, &world_rank));
  struct Entry {
    int role;
    int rank;
    cpu_set_t cpus;
  } mine{role, world_rank, {}};
  CPU_ZERO(&mine.cpus);
  if (sched_getaffinity(0, sizeof(mine.cpus), &mine.cpus) != 0)
    CPU_ZERO(&mine.cpus); // unknown: counts as overlapping every rank below
  std::vector<Entry> all(static_cast<size_t>(out.size));
  CHECK_MPI(
      MPI_Allgather(&mine, sizeof(Entry), MPI_BYTE, all.data(), sizeof(Entry), MPI_BYTE, local));
  CHECK_MPI(MPI_Comm_free(&local));
  for (const Entry &other : all) {
    out.roles.push_back(other.role);
    out.ranks.push_back(other.rank);
    cpu_set_t both;
    CPU_AND(&both, &mine.cpus, &other.cpus);
    if (CPU_COUNT(&both) > 0 || CPU_COUNT(&mine.cpus) == 0 || CPU_COUNT(&other.cpus) == 0)
      out.sharing_roles.push_back(other.role);
  }
  return out;
}

std::vector<int> host_ids(MPI_Comm comm, double timeout_seconds) {
  int size = 1;
  CHECK_MPI(MPI_Comm_size(comm, &size));
  MPI_Comm local;
  CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local));
  // Key 0 keeps `comm`'s order, so the local communicator's rank 0 is the host's lowest rank.
  MPI_Group local_group, comm_group;
  int zero = 0, mine = 0;
  CHECK_MPI(MPI_Comm_group(local, &local_group));
  CHECK_MPI(MPI_Comm_group(comm, &comm_group));
  CHECK_MPI(MPI_Group_translate_ranks(local_group, 1, &zero, comm_group, &mine));
  CHECK_MPI(MPI_Group_free(&local_group));
  CHECK_MPI(MPI_Group_free(&comm_group));
  CHECK_MPI(MPI_Comm_free(&local));
  std::vector<int> all(static_cast<size_t>(size));
  RequestSet set;
  MPI_Request r;
  CHECK_MPI(MPI_Iallgather(&mine, 1, MPI_INT, all.data(), 1, MPI_INT, comm, &r));
  set.add(r, 0, "every rank telling its host (the all-gather of host ids at startup)");
  set.wait_all(timeout_seconds);
  return all;
}

std::vector<int> world_ranks(MPI_Comm comm) {
  int size = 0;
  CHECK_MPI(MPI_Comm_size(comm, &size));
  MPI_Group group, world_group;
  CHECK_MPI(MPI_Comm_group(comm, &group));
  CHECK_MPI(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
  std::vector<int> ranks(static_cast<size_t>(size)), world(ranks.size());
  for (int r = 0; r < size; ++r)
    ranks[static_cast<size_t>(r)] = r;
  CHECK_MPI(MPI_Group_translate_ranks(group, size, ranks.data(), world_group, world.data()));
  CHECK_MPI(MPI_Group_free(&group));
  CHECK_MPI(MPI_Group_free(&world_group));
  return world;
}

void RequestSet::add(MPI_Request request, int peer, std::string what) {
  requests_.push_back(request);
  peers_.push_back(peer);
  whats_.push_back(std::move(what));
}

bool RequestSet::test_all() {
  bool all = true;
  for (auto &r : requests_) {
    if (r == MPI_REQUEST_NULL)
      continue;
    int flag = 0;
    CHECK_MPI(MPI_Test(&r, &flag, MPI_STATUS_IGNORE));
    all = all && flag;
  }
  return all;
}

void RequestSet::wait_all(double timeout_seconds, const std::function<void()> &on_progress,
                          double busy_seconds) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(timeout_seconds);
  const auto busy_until = start + std::chrono::duration<double>(busy_seconds);
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    bool all = test_all();
    run_wait_hook(); // rank 0's heartbeat, on the other ranks (comm/heartbeat.h)
    if (on_progress)
      on_progress();
    if (all)
      return;
    if (Clock::now() > deadline) {
      for (size_t i = 0; i < requests_.size(); ++i)
        if (requests_[i] != MPI_REQUEST_NULL)
          throw PeerTimeout(peers_[i], fmt::format("rank {} did not answer within {:.0f} s ({})",
                                                   peers_[i], timeout_seconds, whats_[i]));
    }
    if (Clock::now() < busy_until) {
      std::this_thread::yield(); // an oversubscribed node still runs the peer
      continue;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

void RequestSet::cancel_pending() {
  for (auto &r : requests_) {
    if (r == MPI_REQUEST_NULL)
      continue;
    MPI_Cancel(&r);
    MPI_Request_free(&r);
    r = MPI_REQUEST_NULL;
  }
}

std::vector<int> RequestSet::pending_peers() const {
  std::vector<int> peers;
  for (size_t i = 0; i < requests_.size(); ++i)
    if (requests_[i] != MPI_REQUEST_NULL)
      peers.push_back(peers_[i]);
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

int64_t chunk_count(int64_t length, int64_t chunk_elems) {
  return length == 0 ? 1 : (length + chunk_elems - 1) / chunk_elems;
}

namespace {
template <typename Post>
size_t post_chunks(RequestSet &set, int64_t length, int64_t chunk_elems, int peer,
                   const std::string &what, Post post) {
  const size_t first = set.size();
  const int64_t chunks = chunk_count(length, chunk_elems);
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t begin = k * chunk_elems;
    const int count = static_cast<int>(std::min(chunk_elems, length - begin));
    MPI_Request request;
    post(begin, count, &request);
    set.add(request, peer, fmt::format("{}, chunk {}/{}", what, k + 1, chunks));
  }
  return first;
}
} // namespace

size_t isend_chunks(RequestSet &set, const void *data, int64_t length, int64_t chunk_elems,
                    MPI_Datatype type, size_t elem_bytes, int peer, int tag, MPI_Comm comm,
                    const std::string &what, bool tag_per_chunk) {
  const auto *bytes = static_cast<const char *>(data);
  return post_chunks(
      set, length, chunk_elems, peer, what, [&](int64_t begin, int count, MPI_Request *r) {
        const int t = tag_per_chunk ? tag + static_cast<int>(begin / chunk_elems) : tag;
        CHECK_MPI(MPI_Isend(bytes + begin * static_cast<int64_t>(elem_bytes), count, type, peer, t,
                            comm, r));
      });
}

size_t irecv_chunks(RequestSet &set, void *data, int64_t length, int64_t chunk_elems,
                    MPI_Datatype type, size_t elem_bytes, int peer, int tag, MPI_Comm comm,
                    const std::string &what, bool tag_per_chunk) {
  auto *bytes = static_cast<char *>(data);
  return post_chunks(
      set, length, chunk_elems, peer, what, [&](int64_t begin, int count, MPI_Request *r) {
        const int t = tag_per_chunk ? tag + static_cast<int>(begin / chunk_elems) : tag;
        CHECK_MPI(MPI_Irecv(bytes + begin * static_cast<int64_t>(elem_bytes), count, type, peer, t,
                            comm, r));
      });
}

} // namespace hetrain
