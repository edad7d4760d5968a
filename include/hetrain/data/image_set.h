// Raw labelled images as they come out of an importer (IDX, CIFAR-10) and go into a dataset file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

struct ImageSet {
  int64_t count = 0, channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels; // [count, channels, height, width], row-major
  std::vector<int32_t> labels; // [count]
  std::vector<std::string> class_names;
  std::string source; // what it was imported from, kept as a file attribute
};

// MNIST-style IDX files (gzip or plain). Validates magic numbers, dimensions, counts and sizes;
// a file named *.gz must really be gzip. Throws UserError naming the file and the problem.
ImageSet read_idx(const std::string &images_path, const std::string &labels_path);

// CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (3x32x32, channel-major),
// several files appended in the given order.
ImageSet read_cifar10(const std::vector<std::string> &paths);

} // namespace hetrain
