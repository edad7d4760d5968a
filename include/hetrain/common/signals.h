// SIGTERM and SIGUSR1: what SLURM sends before a time limit or a preemption (and what mpirun
// forwards). The handler only records the signal; the training loops look at it between rounds,
// write a checkpoint and end with kExitStopped, so a requeued job resumes (--resume auto).
#pragma once

namespace hetrain {

void install_stop_handlers();
// The signal received (SIGTERM or SIGUSR1), or 0.
int stop_signal();
const char *signal_name(int signal); // "SIGTERM", "SIGUSR1"

} // namespace hetrain
