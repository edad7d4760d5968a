// `--data`, `--test-data`, `hetrain data info`: a dataset file (DESIGN §5), read from its bytes in
// memory (HDF5's core driver) with its targets, as a training reads it before it starts.
// Input: the file's bytes.
#include "fuzz_support.h"

#include "hetrain/common/crash_guard.h"

#include "hetrain/data/dataset_file.h"

using namespace hetrain;

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  set_read_check_timeout(5); // below libFuzzer's -timeout: a looping HDF5 is refused, not a hang
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::vector<uint8_t> image(data, data + size);
  fuzz::expect_user_error_or_success([&] {
    std::vector<int64_t> labels;
    std::vector<float> float_targets;
    const DatasetMeta m =
        read_dataset_meta_image(image, "fuzz-dataset.h5", &labels, &float_targets);
    // What read_dataset_meta promises of a file it accepts.
    if (m.count <= 0 || m.sample_elements() <= 0)
      __builtin_trap();
    if (m.class_labels()) {
      if (labels.size() != static_cast<size_t>(m.count))
        __builtin_trap();
      for (int64_t label : labels)
        if (label < 0 || label >= m.num_classes)
          __builtin_trap();
    } else if (float_targets.size() != static_cast<size_t>(m.count * m.target_elements())) {
      __builtin_trap();
    }
  });
  return 0;
}
