#include "hetrain/run/distributed_evaluate.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/check.h"
#include "hetrain/common/log.h"
#include "hetrain/schedule/plan.h"

#include "clock.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace hetrain {
using namespace run;

DistributedEvaluation evaluate_distributed(Model &model, const LossSpec &loss, const Dataset &data,
                                           double timeout_seconds) {
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  CHECK_MPI(MPI_Comm_rank(comm, &rank));
  CHECK_MPI(MPI_Comm_size(comm, &size));
  const int64_t n = data.size();

  // Speed: a warm-up batch, then batches of 128 for a quarter of a second (long enough that
  // ranks sharing a core see it, since they all probe at the same time).
  evaluate_range(model, loss, data, 0, std::min<int64_t>(n, 64), 64);
  constexpr double kProbeSeconds = 0.25;
  const auto start = Clock::now();
  int64_t probed = 0;
  while (seconds_since(start) < kProbeSeconds) {
    const int64_t from = probed % n;
    probed +=
        evaluate_range(model, loss, data, from, std::min<int64_t>(n, from + 128), 128).samples;
  }
  double speed = static_cast<double>(probed) / seconds_since(start);

  DistributedEvaluation out;
  out.speeds.assign(static_cast<size_t>(size), 0.0);
  {
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Iallgather(&speed, 1, MPI_DOUBLE, out.speeds.data(), 1, MPI_DOUBLE, comm, &r));
    set.add(r, -1, "every rank's evaluation speed (MPI_Iallgather)");
    set.wait_all(timeout_seconds);
  }
  out.shares = largest_remainder(out.speeds, n, 0);
  const int64_t begin = std::accumulate(out.shares.begin(), out.shares.begin() + rank, int64_t{0});
  const EvalSums mine =
      evaluate_range(model, loss, data, begin, begin + out.shares[static_cast<size_t>(rank)]);

  double loss_sum = mine.loss_sum, total_loss = 0;
  int64_t counts[2] = {mine.correct, mine.samples}, totals[2] = {0, 0};
  {
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Ireduce(&loss_sum, &total_loss, 1, MPI_DOUBLE, MPI_SUM, 0, comm, &r));
    set.add(r, -1, "the loss sums (MPI_Ireduce to rank 0)");
    CHECK_MPI(MPI_Ireduce(counts, totals, 2, MPI_INT64_T, MPI_SUM, 0, comm, &r));
    set.add(r, -1, "the correct counts (MPI_Ireduce to rank 0)");
    set.wait_all(timeout_seconds);
  }
  if (rank == 0) {
    if (totals[1] != n)
      throw std::logic_error(
          fmt::format("distributed evaluation covered {} of {} samples", totals[1], n));
    out.result.samples = totals[1];
    out.result.loss = total_loss / static_cast<double>(totals[1]);
    out.result.accuracy = static_cast<double>(totals[0]) / static_cast<double>(totals[1]);
  }
  return out;
}

} // namespace hetrain
