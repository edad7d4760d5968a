// Admission (DESIGN §3): which trainers take part. A pure function of the reports that arrived,
// so the rules are unit-tested apart from MPI.
#pragma once

#include "hetrain/cluster/report_message.h"

#include <string>
#include <vector>

namespace hetrain {

struct AdmissionPolicy {
  bool require_gpu = false;        // --require-gpu
  double min_relative_speed = 0.0; // --min-relative-speed: probe speed / fastest trainer's
  bool require_bf16 = false;       // --require-bf16: bf16 arithmetic in the trainer's hardware
};

struct AdmissionVerdict {
  int rank = 0;
  bool admitted = false;
  std::string reason; // why not, for the table and the trainer's own log
};

// One verdict per report, in the reports' order. Reports that never arrived or did not parse are
// rejected before this by the caller (it knows why).
std::vector<AdmissionVerdict> decide_admission(const std::vector<TrainerReport> &reports,
                                               const AdmissionPolicy &policy);

} // namespace hetrain
