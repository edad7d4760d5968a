// `hetrain train --config FILE`: the TOML/INI file turned into flags, the flags parsed into a
// TrainConfig by the same CLI11 options as the command line, validate(), and the config's JSON
// (what checkpoints store) read back to the same config.
// Input: the file's bytes.
#include "fuzz_support.h"

#include "hetrain/config/train_flags.h"

#include <nlohmann/json.hpp>

#include <algorithm>

using namespace hetrain;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzz::scratch_dir() + "/run.toml";
  fuzz::write_file(path, data, size);
  fuzz::expect_user_error_or_success([&] {
    std::vector<std::string> args = expand_config_file({"hetrain", "train", "--config", path});
    CLI::App app;
    CLI::App *train = app.add_subcommand("train");
    TrainConfig config;
    FaultPlan faults;
    add_train_options(*train, config, faults);
    args.erase(args.begin());
    std::reverse(args.begin(), args.end()); // as run_cli: CLI11 takes them back to front
    try {
      app.parse(args);
    } catch (const CLI::ParseError &) {
      return; // reported by run_cli as a bad flag, exit 2
    }
    validate(config);
    nlohmann::json stored;
    to_json(stored, config);
    TrainConfig loaded;
    from_json(stored, loaded);
    nlohmann::json again;
    to_json(again, loaded);
    if (again != stored)
      __builtin_trap();
  });
  return 0;
}
