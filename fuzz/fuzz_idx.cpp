// `hetrain data import-idx`: MNIST-style IDX image and label files, plain or gzip.
// Input: u8 flags (bit 0: the images file is named .gz, bit 1: the labels file), u32 length of
// the images file, its bytes, then the labels file's bytes.
#include "fuzz_support.h"

#include "hetrain/data/image_set.h"

using namespace hetrain;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Bytes in(data, size);
  const uint8_t flags = in.u8();
  const std::vector<uint8_t> images = in.take(in.u32());
  const std::vector<uint8_t> labels = in.rest();
  const std::string dir = fuzz::scratch_dir();
  const std::string images_path = dir + ((flags & 1) ? "/images.idx.gz" : "/images.idx");
  const std::string labels_path = dir + ((flags & 2) ? "/labels.idx.gz" : "/labels.idx");
  fuzz::write_file(images_path, images);
  fuzz::write_file(labels_path, labels);
  fuzz::expect_user_error_or_success([&] {
    const ImageSet set = read_idx(images_path, labels_path);
    // What the importer promises of a set it returns.
    if (set.count <= 0 ||
        set.pixels.size() !=
            static_cast<size_t>(set.count * set.channels * set.height * set.width) ||
        set.labels.size() != static_cast<size_t>(set.count))
      __builtin_trap();
  });
  return 0;
}
