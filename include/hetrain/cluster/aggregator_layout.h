// --aggregators-per-host (DESIGN §6): one shard server per host, co-located with that host's
// trainers (BytePS's co-located servers). With one trainer per host, each host's link then
// carries 2(n-1)/n gradients a round, as a ring all-reduce's does, instead of n gradients into
// rank 0's link. A pure decision from where the launcher put the ranks, unit-tested apart from MPI.
#pragma once

#include <vector>

namespace hetrain {

// `host_of[r]`: the host id of world rank r (comm/mpi_comm.h host_ids). Returns A, the number of
// hosts. Ranks 0..A-1 must sit one per host, and at least one trainer must remain; otherwise a
// UserError names the ranks that share a host and the launcher options that deal ranks
// round-robin over hosts (mpirun --map-by node, srun --distribution=cyclic).
int aggregators_per_host(const std::vector<int> &host_of);

} // namespace hetrain
