#include "hetrain/config/train_flags.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain {

std::vector<std::string> expand_config_file(std::vector<std::string> args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string path;
    size_t consumed = 0;
    if (args[i] == "--config" && i + 1 < args.size()) {
      path = args[i + 1];
      consumed = 2;
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9);
      consumed = 1;
    } else {
      continue;
    }
    std::vector<CLI::ConfigItem> items;
    try {
      items = CLI::ConfigTOML().from_file(path);
    } catch (const CLI::Error &e) {
      throw UserError(fmt::format("--config {}: {}", path, first_line(e.what())));
    }
    std::vector<std::string> flags;
    for (const CLI::ConfigItem &item : items) {
      if (!item.parents.empty() && !(item.parents.size() == 1 && item.parents[0] == "train"))
        throw UserError(fmt::format("--config {}: unknown section [{}]", path, item.parents[0]));
      if (item.name == "++" || item.name == "--")
        continue; // section markers
      flags.push_back("--" + item.name);
      flags.insert(flags.end(), item.inputs.begin(), item.inputs.end());
    }
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
               args.begin() + static_cast<std::ptrdiff_t>(i + consumed));
    auto train_at = std::find(args.begin(), args.end(), "train");
    args.insert(train_at == args.end() ? args.begin() + 1 : train_at + 1, flags.begin(),
                flags.end());
    return args;
  }
  return args;
}

CLI::Validator one_of(std::vector<std::string> names) {
  return CLI::Validator(
      [names](std::string &value) -> std::string {
        if (std::find(names.begin(), names.end(), value) != names.end())
          return {};
        std::string list;
        for (const std::string &n : names)
          list += (list.empty() ? "" : ", ") + n;
        return fmt::format("'{}' is not one of {}", value, list);
      },
      /*validator_desc=*/"");
}

void add_train_options(CLI::App &cmd, TrainConfig &config, FaultPlan &faults) {
  // Repeating a flag (a script's default, then the user's "$@") takes the last value.
  cmd.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  visit_train_options([&](const OptionInfo &option, auto member) {
    add_table_option(cmd, option, config.*member);
  });
  visit_fault_options([&](const OptionInfo &option, auto member) {
    add_table_option(cmd, option, faults.*member);
  });
}

} // namespace hetrain
