#include "hetrain/cluster/aggregator_layout.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <map>
#include <set>

namespace hetrain {

int aggregators_per_host(const std::vector<int> &host_of) {
  const std::set<int> hosts(host_of.begin(), host_of.end());
  const int a = static_cast<int>(hosts.size());
  const int world = static_cast<int>(host_of.size());
  if (world <= a)
    throw UserError(fmt::format("--aggregators-per-host: {} ranks on {} hosts leave no trainer; "
                                "start one aggregator and at least one trainer per host",
                                world, a));
  std::map<int, int> first_on_host; // host id -> the first of ranks 0..A-1 seen there
  for (int r = 0; r < a; ++r) {
    const auto [it, fresh] = first_on_host.emplace(host_of[static_cast<size_t>(r)], r);
    if (!fresh)
      throw UserError(fmt::format(
          "--aggregators-per-host: the job has {} hosts, so ranks 0..{} aggregate, one per host, "
          "but ranks {} and {} share a host; deal ranks round-robin over the hosts: mpirun "
          "--map-by node (or a rankfile), srun --distribution=cyclic",
          a, a - 1, it->second, r));
  }
  return a;
}

} // namespace hetrain
