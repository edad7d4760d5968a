// CHECK_MPI: the MPI member of hetrain's one-macro-per-library family (common/check.h has the
// others). It lives in comm/ because only comm/ and the run (which moves messages) call MPI.
//
//   CHECK_MPI(MPI_Send(...));   any return code other than MPI_SUCCESS fails: LibraryError naming
//                               the call, file:line, rank and host, and MPI's own error string
//
// Our communicators use MPI_ERRORS_RETURN (see mpi_comm.h) so that MPI codes reach CHECK_MPI
// instead of MPI's default handler aborting without saying where.
#pragma once

namespace hetrain::detail {

[[noreturn]] void fail_mpi(int code, const char *call, const char *file, int line);

inline void check_mpi(int code, const char *call, const char *file, int line) {
  if (code != 0) // MPI_SUCCESS is 0 by the standard
    fail_mpi(code, call, file, line);
}

} // namespace hetrain::detail

#define CHECK_MPI(call) ::hetrain::detail::check_mpi((call), #call, __FILE__, __LINE__)
