// MpiSession::finalize's deadline, made to fire on purpose: rank 0 reaches MPI_Finalize LATE
// seconds after the others, so their finalize (Open MPI's closing fence) cannot return within
// their DEADLINE. Each late rank must say so and end by itself with the exit code it was given
// (run by tests/e2e/mpi/finalize_deadline.sh, which checks the messages, the code and that it took
// less than LATE seconds).
// Usage: finalize_deadline [LATE_SECONDS=30 [DEADLINE_SECONDS=2 [EXIT_CODE=7]]]
#include "hetrain/comm/mpi_comm.h"

#include <chrono>
#include <cstdlib>
#include <thread>

int main(int argc, char **argv) {
  hetrain::MpiSession mpi(&argc, &argv);
  const double late = argc > 1 ? std::atof(argv[1]) : 30;
  const double deadline = argc > 2 ? std::atof(argv[2]) : 2;
  const int exit_code = argc > 3 ? std::atoi(argv[3]) : 7;
  if (mpi.rank() == 0)
    std::this_thread::sleep_for(std::chrono::duration<double>(late));
  mpi.finalize(exit_code, deadline);
  return 0;
}
