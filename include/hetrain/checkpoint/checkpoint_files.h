// Which checkpoint files a run writes, keeps and resumes from, and whether a checkpoint can be
// continued by a run: pure decisions over names and contents (unit-tested without a file system
// or MPI), and the two small file-system steps that carry them out.
//
//   <checkpoint-dir>/ckpt-s<global step, 8 digits>-<tag>.h5    tag: step | epoch | signal | abort
//
// Names sort by step; at the same step an epoch-end checkpoint is preferred over a step one.
#pragma once

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/model/models.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

std::string checkpoint_name(int64_t global_step, const std::string &tag);
bool is_checkpoint_name(const std::string &file_name);

// Of these file names, the ones to delete so that the newest `keep` checkpoints stay (files that
// are not checkpoints are never named).
std::vector<std::string> checkpoints_to_prune(std::vector<std::string> file_names, int64_t keep);

// The checkpoints among these file names in the order --resume auto tries them: newest step
// first, an epoch-end file before any other at the same step.
std::vector<std::string> resume_order(std::vector<std::string> file_names);

// What a run must match to continue a checkpoint: the model and its input, and what fixes the
// epoch order and the optimizer's state.
struct ResumeRequirements {
  ModelSpec spec;
  uint64_t seed = 0;
  std::string optimizer;
  std::string fingerprint; // model_fingerprint() of the run's model ("" = compare names)
};
// Why `c` cannot be continued by such a run ("" when it can), in the words the user sees.
std::string resume_refusal(const CheckpointContents &c, const ResumeRequirements &run);

// The file names (not paths) in `dir`; none when it does not exist.
std::vector<std::string> files_in(const std::string &dir);
// Deletes what checkpoints_to_prune names in `dir`.
void prune_checkpoints(const std::string &dir, int64_t keep);

} // namespace hetrain
