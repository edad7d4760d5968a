// `--resume`, `hetrain inspect` and `hetrain evaluate`: a checkpoint file, read from its bytes in
// memory (HDF5's core driver), then its stored config JSON read back as `evaluate` does.
// Input: the file's bytes.
#include "fuzz_support.h"

#include "hetrain/common/crash_guard.h"

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/config/config.h"

#include <nlohmann/json.hpp>

using namespace hetrain;

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  set_read_check_timeout(5); // below libFuzzer's -timeout: a looping HDF5 is refused, not a hang
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::vector<uint8_t> image(data, data + size);
  fuzz::expect_user_error_or_success([&] {
    const CheckpointContents c = read_checkpoint_image(image, "fuzz-checkpoint.h5");
    const nlohmann::json config = nlohmann::json::parse(c.config_json, nullptr, false);
    if (config.is_object()) {
      TrainConfig trained;
      from_json(config, trained);
    }
  });
  return 0;
}
