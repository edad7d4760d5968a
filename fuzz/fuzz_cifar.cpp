// `hetrain data import-cifar`: CIFAR-10 binary batches, one or several files appended in order.
// Input: u8 number of files (1 + n % 3), then the bytes, cut into that many equal parts.
#include "fuzz_support.h"

#include "hetrain/data/image_set.h"

using namespace hetrain;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Bytes in(data, size);
  const size_t files = 1 + in.u8() % 3;
  const size_t part = in.remaining() / files;
  std::vector<std::string> paths;
  for (size_t i = 0; i < files; ++i) {
    paths.push_back(fuzz::scratch_dir() + "/data_batch_" + std::to_string(i + 1) + ".bin");
    fuzz::write_file(paths.back(), i + 1 < files ? in.take(part) : in.rest());
  }
  fuzz::expect_user_error_or_success([&] {
    const ImageSet set = read_cifar10(paths);
    if (set.count <= 0 || set.pixels.size() != static_cast<size_t>(set.count) * 3 * 32 * 32 ||
        set.labels.size() != static_cast<size_t>(set.count))
      __builtin_trap();
    for (int32_t label : set.labels)
      if (label < 0 || label >= 10)
        __builtin_trap();
  });
  return 0;
}
