// The advice rank 0 gives once per run when a round is bound by communication (DESIGN §4). A pure
// function of the figures, unit-tested without MPI; the coordinator fills the facts from the cost
// model (plan.h estimate_round over the probe's rates) and, once rounds ran, from what it measured.
#pragma once

#include <cstdint>
#include <string>

namespace hetrain {

struct CommunicationFacts {
  double compute_seconds = 0; // the compute part of a round (slowest trainer's)
  double round_seconds = 0;   // the whole round, estimated or measured
  bool measured = false;      // from rounds that ran, not from the probe's estimate
  // The cost model's view of the current plan, from the link probe's rates (plan.h).
  double model_round_seconds = 0;
  double model_compute_seconds = 0;
  double model_trainer_seconds = 0;    // max_i (c_i + t_i): a trainer's own link
  double model_aggregator_seconds = 0; // the busiest aggregator's shared link
  double upload_fraction = 0.5;        // of the model's communication: the uploads
  std::string slowest_trainer;    // "rank 3 (h3), its link 1.7 MB/s": whose c_i + t_i is largest
  std::string busiest_aggregator; // "rank 0 (h0), 110.2 MB/s"
  std::string longest_measured;   // "rank 3 (h3), 1.20 s a round": measured transfers; may be empty
  int wire_bytes = 4;             // --wire-dtype: bytes per uploaded element
  int aggregators = 1;
  int hosts = 1; // distinct hosts of the trainers
  bool params_mode = false;
  int64_t local_steps = 1;
};

// One warning when communication takes longer than compute in a round, empty otherwise. It names
// the bottleneck the cost model finds (a trainer's own link, or an aggregator's shared link), or,
// when the measured communication is well beyond what the measured links explain, says so and
// names the longest measured transfer instead of blaming a link. Then only the options whose gain
// the cost model estimates at 5% of the round or more, each with the round time expected:
// --wire-dtype bf16 (half the upload bytes), --aggregators H with --map-by node (each aggregator
// link carries A/H of its bytes; no help when a trainer's own link is the bottleneck), --sync
// params --local-steps L (communication once per L batches; time per global batch). A gain is the
// cost model's saving; what the model does not explain is assumed to stay.
std::string communication_advice(const CommunicationFacts &facts);

// Above this ratio of measured to modelled communication (plus a small absolute slack), the links
// measured at start-up do not explain a round's communication.
inline constexpr double kUnexplainedCommunication = 1.5;

} // namespace hetrain
