// MpiSession::finalize's deadline, made to fire on purpose: rank 0 reaches MPI_Finalize 30 s
// after the others, so their finalize (Open MPI's closing fence) cannot return in time. Each late
// rank must say so and end by itself with the exit code it was given (run by mpi_tests.sh
// finalize_deadline, which checks the messages, the code and that it took seconds, not 30).
#include "hetrain/comm/mpi_comm.h"

#include <chrono>
#include <thread>

int main(int argc, char **argv) {
  hetrain::MpiSession mpi(&argc, &argv);
  if (mpi.rank() == 0)
    std::this_thread::sleep_for(std::chrono::seconds(30));
  mpi.finalize(/*exit_code=*/7, /*deadline_seconds=*/2);
  return 0;
}
