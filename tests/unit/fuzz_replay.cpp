// The fuzz targets' inputs, replayed in every build (fuzz/README.md): each target's harness is
// compiled here under its own name (tests/CMakeLists.txt renames LLVMFuzzerTestOneInput), and
// `fuzz_replay TARGET DIR` runs every file of DIR through it: the seeds and the inputs that once
// crashed a target. A crash, a sanitizer report (in a sanitizer build) or an exception other than
// the one the parser promises ends the process, and the test fails.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#define HETRAIN_FUZZ_TARGET(name)                                                                  \
  extern "C" int fuzz_##name##_one_input(const uint8_t *data, size_t size);
HETRAIN_FUZZ_TARGET(idx)
HETRAIN_FUZZ_TARGET(cifar)
HETRAIN_FUZZ_TARGET(image_folder)
HETRAIN_FUZZ_TARGET(messages)
HETRAIN_FUZZ_TARGET(checkpoint)
HETRAIN_FUZZ_TARGET(dataset)
HETRAIN_FUZZ_TARGET(config)
HETRAIN_FUZZ_TARGET(model_file)
extern "C" int fuzz_checkpoint_initialize(int *, char ***);
extern "C" int fuzz_dataset_initialize(int *, char ***);

int main(int argc, char **argv) {
  using OneInput = int (*)(const uint8_t *, size_t);
  const std::map<std::string, OneInput> targets = {{"idx", fuzz_idx_one_input},
                                                   {"cifar", fuzz_cifar_one_input},
                                                   {"image_folder", fuzz_image_folder_one_input},
                                                   {"messages", fuzz_messages_one_input},
                                                   {"checkpoint", fuzz_checkpoint_one_input},
                                                   {"dataset", fuzz_dataset_one_input},
                                                   {"config", fuzz_config_one_input},
                                                   {"model_file", fuzz_model_file_one_input}};
  if (argc != 3 || targets.count(argv[1]) == 0) {
    std::fprintf(stderr, "usage: fuzz_replay TARGET CORPUS_DIR\n");
    return 2;
  }
  fuzz_checkpoint_initialize(&argc, &argv);
  fuzz_dataset_initialize(&argc, &argv);
  std::vector<std::filesystem::path> files;
  for (const auto &entry : std::filesystem::directory_iterator(argv[2]))
    if (entry.is_regular_file())
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto &file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    std::printf("%s: %zu bytes\n", file.filename().c_str(), bytes.size());
    std::fflush(stdout);
    targets.at(argv[1])(bytes.data(), bytes.size());
  }
  std::printf("%s: %zu inputs replayed, none crashed\n", argv[1], files.size());
  return files.empty() ? 1 : 0; // an empty corpus is a broken checkout, not a pass
}
