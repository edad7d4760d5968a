// MPI for hetrain: one session per process, point-to-point transfers in fixed-size chunks, and
// waits that always have a deadline and name whom they were waiting for (DESIGN §7).
#pragma once

#include <mpi.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hetrain {

// MPI_Init_thread / MPI_Finalize, with MPI_ERRORS_RETURN on MPI_COMM_WORLD so that every code
// reaches CHECK_MPI. Records rank and world size for log lines.
class MpiSession {
public:
  // `ranks_may_leave`: the job goes on when a rank leaves early (a trainer's planned leave, DESIGN
  // §7) or dies (--on-trainer-loss continue under mpirun --enable-recovery). Open MPI's
  // MPI_Finalize then skips its closing fence over all ranks (OMPI_MCA_async_mpi_finalize=1): with
  // the fence a leaving trainer would stay in MPI_Finalize until the whole job ends (tried: Open
  // MPI 4.1.4), and the fence can wait forever for a dead rank (4 runs in 20 on a loaded 2-core
  // machine).
  MpiSession(int *argc, char ***argv, bool ranks_may_leave = false);
  // Finalizes with a deadline of 10 s and exit code 1 when finalize() was not called (a path left
  // by an exception).
  ~MpiSession();
  MpiSession(const MpiSession &) = delete;
  MpiSession &operator=(const MpiSession &) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  // MPI_Finalize, with a deadline like every other wait: a finalize that has not returned after
  // `deadline_seconds` is reported (rank, host, how long) and the process ends with `exit_code`
  // without it, rather than hang in the launcher's fence.
  void finalize(int exit_code, double deadline_seconds);

private:
  int rank_ = 0, size_ = 1;
  bool finalized_ = false;
};

// This rank among the processes of its node (MPI_COMM_TYPE_SHARED): the local rank picks its GPU.
// `sharing_roles`: the `role` every rank of this node passed whose CPU affinity overlaps this
// rank's (this rank's own included), so that the cores can be divided among the processes that
// really compete for them (none when the launcher bound each rank to cores of its own).
// `roles`, `ranks`: every rank of this node in local-rank order, its role and its rank in `comm`
// (device placement, cluster/device_placement.h). Collective over `comm`.
struct NodeLocal {
  int rank = 0, size = 1;
  std::vector<int> sharing_roles;
  std::vector<int> roles, ranks;
};
NodeLocal node_local(MPI_Comm comm, int role);

// The host of every rank of `comm`, as the lowest rank of `comm` on it: ranks that share memory
// (MPI_COMM_TYPE_SHARED, i.e. one node to the launcher) have the same id. Host names are not
// used: simulated hosts (network namespaces) and containers may all share one. Collective; the
// all-gather has a deadline of `timeout_seconds` (a rank that died since the split is named).
std::vector<int> host_ids(MPI_Comm comm, double timeout_seconds);

// The MPI_COMM_WORLD rank of every rank of `comm`, in `comm`'s order (local: no messages).
std::vector<int> world_ranks(MPI_Comm comm);

// A wait that ran out of time. `peer` is the rank that did not answer.
class PeerTimeout : public std::runtime_error {
public:
  PeerTimeout(int peer, const std::string &what) : std::runtime_error(what), peer_(peer) {}
  int peer() const { return peer_; }

private:
  int peer_;
};

// Outstanding non-blocking operations, each with the peer and what it is for.
class RequestSet {
public:
  void add(MPI_Request request, int peer, std::string what);
  size_t size() const { return requests_.size(); }
  MPI_Request &request(size_t i) { return requests_[i]; }
  bool done(size_t i) const { return requests_[i] == MPI_REQUEST_NULL; }
  // Tests every pending request once; returns true when all are complete.
  bool test_all();
  // Polls (sleeping briefly between tests, so an oversubscribed node keeps its cores for the
  // trainers) until all complete or `timeout_seconds` pass; then throws PeerTimeout naming the
  // first incomplete request. `on_progress` runs after every poll (pipelined reduction).
  // `busy_seconds`: poll without sleeping for this long first, for waits that are themselves
  // measured (the link probe); a longer wait then sleeps, leaving the cores to others.
  void wait_all(double timeout_seconds, const std::function<void()> &on_progress = {},
                double busy_seconds = 0);
  // Cancels and frees what is still pending (after a timeout).
  void cancel_pending();
  // The peers of the requests still pending, each once, in rank order.
  std::vector<int> pending_peers() const;

private:
  std::vector<MPI_Request> requests_;
  std::vector<int> peers_;
  std::vector<std::string> whats_;
};

// Posts a buffer as chunks of at most `chunk_elems` elements of `type` (`elem_bytes` each), so no
// message exceeds MPI's int count. Returns the index in `set` of the first chunk; chunk k is at
// first + k. `tag_per_chunk`: chunk k travels with tag + k, so chunks may be sent in any order
// (MPI matches same-tag messages in order); the receiver must say the same.
size_t isend_chunks(RequestSet &set, const void *data, int64_t length, int64_t chunk_elems,
                    MPI_Datatype type, size_t elem_bytes, int peer, int tag, MPI_Comm comm,
                    const std::string &what, bool tag_per_chunk = false);
size_t irecv_chunks(RequestSet &set, void *data, int64_t length, int64_t chunk_elems,
                    MPI_Datatype type, size_t elem_bytes, int peer, int tag, MPI_Comm comm,
                    const std::string &what, bool tag_per_chunk = false);
inline size_t isend_chunks(RequestSet &set, const float *data, int64_t length, int64_t chunk_elems,
                           int peer, int tag, MPI_Comm comm, const std::string &what) {
  return isend_chunks(set, data, length, chunk_elems, MPI_FLOAT, 4, peer, tag, comm, what);
}
inline size_t irecv_chunks(RequestSet &set, float *data, int64_t length, int64_t chunk_elems,
                           int peer, int tag, MPI_Comm comm, const std::string &what) {
  return irecv_chunks(set, data, length, chunk_elems, MPI_FLOAT, 4, peer, tag, comm, what);
}
int64_t chunk_count(int64_t length, int64_t chunk_elems);

} // namespace hetrain
