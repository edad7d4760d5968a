// The link probe (DESIGN §3): after admission, before the starting parameters go out, every
// trainer measures its link to each aggregator rank (0..A-1) it will talk to: latency (median of
// 8-byte ping-pongs) and bandwidth both ways with messages of the real piece size, within
// --link-probe-seconds for the whole job. Pairs go in the rounds of probe_schedule(), so no two
// trainers share an aggregator's link while they measure. Each trainer sends its figures to rank
// 0. Every rank of the job communicator calls its role's function once, right after the
// communicator exists. Internal to src/run.
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/schedule/links.h"

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain::run {

// Rank 0: serves its pairs, then collects every trainer's figures (world ranks = job ranks for
// aggregators; trainers' world ranks as they report them). Logs the probe's duration and, when
// given, stores it and the wait for every rank to start the probe in `seconds` and `wait_seconds`.
std::vector<LinkFigures> probe_links_coordinator(const TrainConfig &config, MPI_Comm job,
                                                 double *seconds = nullptr,
                                                 double *wait_seconds = nullptr);
// A shard server (ranks 1..A-1): serves its pairs.
void probe_links_server(const TrainConfig &config, MPI_Comm job);
// A trainer: measures its pairs with messages of `piece_bytes` (the largest piece of the
// flat-buffer layout) and sends its figures to rank 0; returns them.
std::vector<LinkFigures> probe_links_trainer(const TrainConfig &config, MPI_Comm job,
                                             const std::vector<int> &hosts, int world_rank,
                                             int64_t piece_bytes);

// {"trainer_rank":3,"aggregator_rank":0,"same_host":false,"latency_ms":0.21,"up_mb_per_s":112.0,
//  "down_mb_per_s":113.0,"message_bytes":4194304,"up_bound":"exact","down_bound":"at_most"}:
// the summary's, metrics' and checkpoints' form (bounds: exact, at_least, at_most; DESIGN §3).
nlohmann::json link_json(const LinkFigures &f);
nlohmann::json links_json(const std::vector<LinkFigures> &links);

// One line per pair (trainer and its host, aggregator and its host, latency ms, up and down MB/s
// with ">=" / "<=" before a bound, message bytes, same host): the table rank 0 prints after the
// admission table.
// `host_names`: by world rank.
void log_link_table(const std::vector<LinkFigures> &links,
                    const std::vector<std::string> &host_names);

} // namespace hetrain::run
