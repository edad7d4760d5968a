// How many torch threads a rank of a distributed job uses when --threads is not given: a pure
// decision from what the rank can see, unit-tested apart from MPI.
//
// Ranks that share a host (and whose CPU affinity overlaps: a launcher that binds each rank to
// cores of its own leaves nothing to divide) would each start one thread per core and
// oversubscribe it: a 1+3-rank job on 2 cores ran 12x slower than with one thread each. So the
// cores are divided. An aggregator (rank 0, a shard server) takes one core where trainers share
// its cores: its reduce is memory-bound and its step short, and both run while the trainers wait;
// the trainers divide the rest. An aggregator alone with other aggregators divides the cores
// among them.
#pragma once

#include <vector>

namespace hetrain {

enum class RankRole : int { kAggregator = 0, kTrainer = 1 };

// `usable_cores`: the cores this rank may run on; `sharing`: the role of every rank whose cores
// overlap this rank's (this rank included). Always at least 1.
int default_threads(int usable_cores, const std::vector<int> &sharing, RankRole mine);

} // namespace hetrain
