// Facts about this process's host that several stages need (data residency, the node report).
#pragma once

#include <cstdint>
#include <string>

namespace hetrain {

// Cores this process may run on (sched_getaffinity), not the machine's total: under taskset,
// mpirun --bind-to or a SLURM cgroup this is what we actually get.
int usable_cores();
// Bytes from /proc/meminfo ("MemAvailable", "SwapFree", ...); 0 when absent.
int64_t meminfo_bytes(const std::string &field);
std::string cpu_model_name();

} // namespace hetrain
