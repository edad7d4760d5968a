// Shared helpers for the tests: temporary folders, tiny synthetic datasets, IDX writers, and
// running the hetrain binary as a user would.
#pragma once

#include "hetrain/common/hdf5_util.h"
#include "hetrain/config/config.h"
#include "hetrain/data/image_set.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace hetrain::testing {

// A fresh folder under the system temp dir, removed with everything in it at scope end.
class TempDir {
public:
  TempDir();
  ~TempDir();
  std::string path(const std::string &name) const { return (dir_ / name).string(); }
  const std::filesystem::path &dir() const { return dir_; }
  std::vector<std::string> files() const; // names of the entries, sorted

private:
  std::filesystem::path dir_;
};

// A learnable toy problem: `classes` classes of 1 x side x side images; class k lights up one
// of the image's stripes, plus noise. Deterministic in `seed`.
ImageSet synthetic_images(int64_t count, int64_t classes, int64_t side, uint32_t seed,
                          int64_t channels = 1);

// Writes a dataset file from synthetic images and returns its path.
std::string write_synthetic_dataset(const TempDir &dir, const std::string &name, int64_t count,
                                    int64_t classes, int64_t side, uint32_t seed,
                                    int64_t channels = 1);

// A dataset file laid out by hand, so that it can be wrong in ways write_dataset_file refuses:
// /images of `image_kind` and `image_dims`, /labels (int32, dims `label_dims`, default: the
// number of labels) unless `with_labels` is false.
void write_raw_dataset(const std::string &path, h5::Kind image_kind,
                       const std::vector<hsize_t> &image_dims, const std::vector<int32_t> &labels,
                       bool with_labels = true, std::vector<hsize_t> label_dims = {});

// A short one-process run on the toy problem: mlp, 3 epochs, global batch 64 of micro-batches
// of 16, momentum SGD, one thread, checkpoints under dir/ckpt.
TrainConfig toy_train_config(const TempDir &dir, const std::string &train, const std::string &test);

// IDX bytes: magic, big-endian dimensions, payload.
std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t> &dims,
                               const std::vector<uint8_t> &payload);
void write_bytes(const std::string &path, const std::vector<uint8_t> &bytes);
void write_gzip(const std::string &path, const std::vector<uint8_t> &bytes);

struct CommandResult {
  int exit_code = -1;
  std::string output; // stdout and stderr together
};
// Runs the hetrain binary with the given arguments (shell-quoted for you). `prefix`: shell words
// put before the binary as they are (a wrapper such as `unshare ...` or `sh -c '...'`).
CommandResult run_hetrain(const std::vector<std::string> &args, const std::string &prefix = "");

} // namespace hetrain::testing
