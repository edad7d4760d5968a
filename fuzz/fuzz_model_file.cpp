// `--model FILE.pt`: the checks around LibTorch's TorchScript loader (a file that is not
// TorchScript, one from a newer PyTorch, one without a forward method), and the loader itself.
// `--model-plugin` is not fuzzed: a plugin is code that dlopen runs, not data (DESIGN §4).
// Input: the file's bytes.
#include "fuzz_support.h"

#include "hetrain/model/script_model.h"

using namespace hetrain;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzz::scratch_dir() + "/model.pt";
  fuzz::write_file(path, data, size);
  fuzz::expect_user_error_or_success([&] { (void)ScriptModel::load(path); });
  return 0;
}
