// bench/shards: how long the busiest aggregator takes to receive (and reduce) one round of
// gradients with --aggregators A = 1, 2, 3, side by side in one MPI job. Uses hetrain's own
// pieces: shard_layout, isend_chunks / irecv_chunks, ChunkReducer.
//
//   mpirun -np 6 build/bench_shards [--elements N] [--rounds R] [--chunk-mb C] [--json FILE]
//
// World ranks 0..2 are the (up to three) aggregators, ranks 3.. the trainers. Each repetition
// runs A = 1, 2, 3 in turn (interleaved, so load on the machine hits all alike): a barrier, then
// every trainer sends its N-float gradient, piece k to the owner of piece k; every aggregator
// times from the barrier until all its pieces are in and reduced. Reported per A: the median over
// rounds of the slowest aggregator's time and of rank 0's, bytes into the busiest aggregator, and
// the speedups against A = 1 (time with A = 1 / time with A). Trainer t sends t + 1 everywhere, so
// each reduced element must be the mean of 1..T: a wrong value is reported and the exit status
// is 1.
#include "hetrain/aggregate/shards.h"
#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/check.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <vector>

namespace {

constexpr int kMaxAggregators = 3;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} // namespace

int main(int argc, char **argv) {
  using namespace hetrain;
  CLI::App app{"bench/shards: aggregator receive time per round for --aggregators 1, 2, 3"};
  int64_t elements = 16 << 20; // a 64 MiB fp32 gradient (a ~16M-parameter model)
  int rounds = 10;
  double chunk_mb = 4;
  std::string json_path;
  app.add_option("--elements", elements, "gradient length in floats")->capture_default_str();
  app.add_option("--rounds", rounds, "timed rounds per A (median reported)")->capture_default_str();
  app.add_option("--chunk-mb", chunk_mb, "message size, as hetrain's --chunk-mb")
      ->capture_default_str();
  app.add_option("--json", json_path, "also write the JSON report here");
  CLI11_PARSE(app, argc, argv);

  MpiSession mpi(&argc, &argv);
  const int rank = mpi.rank(), world = mpi.size();
  const int trainers = world - kMaxAggregators;
  if (trainers < 1) {
    if (rank == 0)
      std::fprintf(stderr, "bench_shards: needs at least %d ranks (3 aggregators + trainers)\n",
                   kMaxAggregators + 1);
    return 2;
  }
  const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(chunk_mb * (1 << 20)) / 4);
  const bool is_trainer = rank >= kMaxAggregators;
  std::vector<float> gradient;
  if (is_trainer)
    gradient.assign(static_cast<size_t>(elements), static_cast<float>(rank - kMaxAggregators + 1));
  const float expected = 0.5f * static_cast<float>(trainers + 1); // mean of 1..T

  // Per A: this rank's seconds per round (aggregators only).
  std::vector<std::vector<double>> seconds(kMaxAggregators + 1);
  bool correct = true;
  for (int r = 0; r < rounds + 1; ++r) { // round 0 warms up (first-touch pages, connections)
    for (int a = 1; a <= kMaxAggregators; ++a) {
      const ShardLayout layout = shard_layout(elements, chunk, a);
      {
        RequestSet barrier; // every wait has a deadline, collectives too
        MPI_Request b;
        CHECK_MPI(MPI_Ibarrier(MPI_COMM_WORLD, &b));
        barrier.add(b, -1, "the barrier before a round");
        barrier.wait_all(600);
      }
      const auto start = std::chrono::steady_clock::now();
      RequestSet set;
      if (is_trainer) {
        for (const Piece &p : layout.pieces)
          isend_chunks(set, gradient.data() + p.begin, p.length, chunk, p.owner,
                       1000 + static_cast<int>(p.index), MPI_COMM_WORLD, "sending a piece");
        set.wait_all(600);
      } else if (rank < a) {
        const std::vector<Piece> mine = layout.pieces_of(rank);
        const int64_t begin = layout.shard_begin[static_cast<size_t>(rank)];
        const int64_t length = layout.shard_length(rank);
        ChunkReducer reducer(ReduceDevice::kCpu, static_cast<size_t>(trainers), length,
                             DType::kFloat32, 1);
        std::vector<float> out(static_cast<size_t>(length), -1.0f);
        std::vector<size_t> first(static_cast<size_t>(trainers));
        for (int t = 0; t < trainers; ++t) {
          first[static_cast<size_t>(t)] = set.size();
          auto *into = static_cast<float *>(reducer.receive_buffer(static_cast<size_t>(t)));
          for (const Piece &p : mine)
            irecv_chunks(set, into + (p.begin - begin), p.length, chunk, kMaxAggregators + t,
                         1000 + static_cast<int>(p.index), MPI_COMM_WORLD, "receiving a piece");
        }
        std::vector<size_t> slots(static_cast<size_t>(trainers));
        for (size_t t = 0; t < slots.size(); ++t)
          slots[t] = t;
        reducer.begin_round(slots,
                            std::vector<float>(slots.size(), 1.0f / static_cast<float>(trainers)));
        std::vector<bool> reduced(mine.size(), false);
        set.wait_all(600, [&] {
          for (size_t q = 0; q < mine.size(); ++q) {
            bool ready = !reduced[q];
            for (size_t t = 0; ready && t < first.size(); ++t)
              ready = set.done(first[t] + q);
            if (ready) {
              reducer.reduce_chunk(mine[q].begin - begin, mine[q].length, out.data());
              reduced[q] = true;
            }
          }
        });
        reducer.finish();
        const double took =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        for (float v : out)
          if (std::fabs(v - expected) > 1e-5f * expected) {
            correct = false;
            break;
          }
        if (r > 0)
          seconds[static_cast<size_t>(a)].push_back(took);
      }
    }
  }

  // Rank 0 collects every aggregator's medians.
  double local[kMaxAggregators + 1] = {0, 0, 0, 0};
  for (int a = 1; a <= kMaxAggregators; ++a)
    if (!seconds[static_cast<size_t>(a)].empty())
      local[a] = median(seconds[static_cast<size_t>(a)]);
  std::vector<double> all(static_cast<size_t>(world) * (kMaxAggregators + 1));
  int ok = correct ? 1 : 0, all_ok = 0;
  {
    RequestSet collect;
    MPI_Request g;
    CHECK_MPI(MPI_Igather(local, kMaxAggregators + 1, MPI_DOUBLE, all.data(), kMaxAggregators + 1,
                          MPI_DOUBLE, 0, MPI_COMM_WORLD, &g));
    collect.add(g, -1, "gathering the timings");
    CHECK_MPI(MPI_Ireduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, 0, MPI_COMM_WORLD, &g));
    collect.add(g, -1, "gathering the checks");
    collect.wait_all(600);
  }
  if (rank != 0)
    return 0;
  nlohmann::json results = nlohmann::json::array();
  double base_slowest = 0, base_rank0 = 0;
  for (int a = 1; a <= kMaxAggregators; ++a) {
    double slowest = 0;
    nlohmann::json per = nlohmann::json::array();
    for (int j = 0; j < a; ++j) {
      const double s = all[static_cast<size_t>(j) * (kMaxAggregators + 1) + static_cast<size_t>(a)];
      slowest = std::max(slowest, s);
      per.push_back(s);
    }
    const double rank0 = per[0].get<double>();
    if (a == 1) {
      base_slowest = slowest;
      base_rank0 = rank0;
    }
    const ShardLayout layout = shard_layout(elements, chunk, a);
    int64_t widest = 0;
    for (int j = 0; j < a; ++j)
      widest = std::max(widest, layout.shard_length(j));
    results.push_back({{"aggregators", a},
                       {"median_seconds_per_aggregator", per},
                       {"slowest_aggregator_seconds", slowest},
                       {"rank0_seconds", rank0},
                       {"bytes_into_busiest_aggregator", widest * 4 * trainers},
                       {"speedup_slowest_vs_a1", base_slowest / slowest},
                       {"speedup_rank0_vs_a1", base_rank0 / rank0}});
  }
  nlohmann::json report = {
      {"benchmark", "shards"}, {"elements", elements},   {"trainers", trainers}, {"rounds", rounds},
      {"chunk_mb", chunk_mb},  {"correct", all_ok == 1}, {"results", results}};
  std::cout << report.dump(2) << std::endl;
  if (!json_path.empty())
    std::ofstream(json_path) << report.dump(2) << '\n';
  if (all_ok != 1) {
    std::fprintf(stderr, "bench_shards: a reduced value was wrong\n");
    return 1;
  }
  return 0;
}
