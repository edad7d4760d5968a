// Checkpoint naming, pruning, the order --resume auto tries files in, and which checkpoints a run
// may continue: pure decisions, tested without MPI (pruning once on a real folder too).
#include "hetrain/checkpoint/checkpoint_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

using namespace hetrain;
namespace fs = std::filesystem;

TEST(CheckpointFiles, NamesSortByStepAndAreRecognised) {
  EXPECT_EQ(checkpoint_name(10, "step"), "ckpt-s00000010-step.h5");
  EXPECT_EQ(checkpoint_name(123456789, "epoch"), "ckpt-s123456789-epoch.h5");
  EXPECT_LT(checkpoint_name(9, "step"), checkpoint_name(10, "step"));
  EXPECT_TRUE(is_checkpoint_name("ckpt-s00000010-abort.h5"));
  EXPECT_FALSE(is_checkpoint_name("ckpt-s00000010-step.h5.tmp-123"));
  EXPECT_FALSE(is_checkpoint_name("model.h5"));
  EXPECT_FALSE(is_checkpoint_name("ckpt-s00000010-step.txt"));
}

TEST(CheckpointFiles, PruningKeepsTheNewestAndNeverTouchesOtherFiles) {
  const std::vector<std::string> names{"ckpt-s00000004-step.h5",        "notes.txt",
                                       "ckpt-s00000002-step.h5",        "ckpt-s00000008-epoch.h5",
                                       "ckpt-s00000006-step.h5.tmp-77", "ckpt-s00000006-step.h5"};
  EXPECT_EQ(checkpoints_to_prune(names, 2),
            (std::vector<std::string>{"ckpt-s00000002-step.h5", "ckpt-s00000004-step.h5"}));
  EXPECT_TRUE(checkpoints_to_prune(names, 4).empty());
  EXPECT_EQ(checkpoints_to_prune(names, 0).size(), 4u);
}

TEST(CheckpointFiles, ResumeTriesTheNewestStepFirstAndAnEpochEndBeforeAStepFile) {
  const std::vector<std::string> names{"ckpt-s00000024-step.h5",   "ckpt-s00000010-step.h5",
                                       "ckpt-s00000024-epoch.h5",  "README",
                                       "ckpt-s00000030-signal.h5", "ckpt-s00000024-abort.h5"};
  EXPECT_EQ(resume_order(names),
            (std::vector<std::string>{"ckpt-s00000030-signal.h5", "ckpt-s00000024-epoch.h5",
                                      "ckpt-s00000024-step.h5", "ckpt-s00000024-abort.h5",
                                      "ckpt-s00000010-step.h5"}));
}

TEST(CheckpointFiles, ARunMayContinueOnlyAMatchingCheckpoint) {
  CheckpointContents c;
  c.model = ModelSpec{"mlp", 1, 28, 28, 10};
  c.seed = 7;
  c.optimizer.kind = "momentum";
  ResumeRequirements run{ModelSpec{"mlp", 1, 28, 28, 10}, 7, "momentum", ""};
  EXPECT_EQ(resume_refusal(c, run), "");
  auto refused = [&](ResumeRequirements r) { return resume_refusal(c, r); };
  ResumeRequirements other = run;
  other.spec.name = "cnn";
  EXPECT_EQ(refused(other), "a checkpoint of model 'mlp', this run trains 'cnn': another model");
  // With fingerprints on both sides they decide: a moved TorchScript file is the same model,
  // another file with the same name is not.
  c.model_fingerprint = "00000000000000aa";
  other = run;
  other.spec.name = "/elsewhere/net.pt";
  c.model.name = "net.pt";
  other.fingerprint = "00000000000000aa";
  EXPECT_EQ(refused(other), "");
  other.spec.name = "net.pt";
  other.fingerprint = "00000000000000bb";
  EXPECT_EQ(refused(other), "a checkpoint of model 'net.pt' (fingerprint 00000000000000aa), this "
                            "run trains 'net.pt' (fingerprint 00000000000000bb): another model");
  c.model.name = "mlp";
  c.model_fingerprint.clear();
  other = run;
  other.spec.in_channels = 3;
  other.spec.height = other.spec.width = 32;
  EXPECT_EQ(refused(other), "made for 1x28x28 images, the dataset has 3x32x32");
  other = run;
  other.spec.num_classes = 100;
  EXPECT_EQ(refused(other), "made for 10 classes, the dataset has 100");
  other = run;
  other.seed = 8;
  EXPECT_NE(refused(other).find("made with --seed 7, this run has --seed 8"), std::string::npos);
  other = run;
  other.optimizer = "adam";
  EXPECT_EQ(refused(other), "its optimizer is momentum, this run's is adam");
}

TEST(CheckpointFiles, PruneOnAFolderDeletesOnlyTheOldCheckpoints) {
  const fs::path dir = fs::temp_directory_path() / ("hetrain-prune-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char *name : {"ckpt-s00000001-step.h5", "ckpt-s00000002-step.h5",
                           "ckpt-s00000003-epoch.h5", "keep-me.txt"})
    std::ofstream(dir / name) << "x";
  prune_checkpoints(dir.string(), 1);
  std::vector<std::string> left = files_in(dir.string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"ckpt-s00000003-epoch.h5", "keep-me.txt"}));
  fs::remove_all(dir);
  EXPECT_TRUE(files_in(dir.string()).empty()); // a folder that is not there has no files
}
