// The flags of `hetrain train` on a CLI11 command line, and `--config FILE`, which turns a TOML/INI
// file into such flags. Apart from cli/ so that the config-file fuzz target (fuzz/fuzz_config.cpp)
// parses exactly what `hetrain train --config FILE` parses without linking the whole program.
#pragma once

#include "hetrain/common/faults.h"
#include "hetrain/config/choices.h"
#include "hetrain/config/config.h"
#include "hetrain/config/options.h"

#include <CLI/CLI.hpp>

#include <string>
#include <type_traits>
#include <vector>

namespace hetrain {

// `--config FILE` (TOML or INI, keys are the long flag names without dashes) is expanded into
// flags placed before the command line's own, so a flag given on the command line wins. Throws
// UserError naming the file for one that cannot be read or parsed, or has an unknown section.
std::vector<std::string> expand_config_file(std::vector<std::string> args);

// The check of an option with a fixed set of values, with the message validate() gives: CLI11
// puts "--flag: " before it.
CLI::Validator one_of(std::vector<std::string> names);

template <class E> std::vector<std::string> names_vector() {
  std::vector<std::string> names;
  for (const NamedValue<E> &n : EnumNames<E>::table)
    names.push_back(n.name);
  return names;
}

// An option with an enum's names (config/choices.h): checked against the table, then converted.
template <class E>
CLI::Option *add_named_option(CLI::App &cmd, const std::string &name, E &field,
                              const std::string &help) {
  return cmd
      .add_option_function<std::string>(
          "--" + name,
          [&field, name](const std::string &value) { field = parse_named<E>(name, value); }, help)
      ->check(one_of(names_vector<E>()))
      ->default_str(name_of(field));
}

// One row of an option table (config/options.h) on the command line, by its member's type.
template <class T> void add_table_option(CLI::App &cmd, const OptionInfo &option, T &field) {
  const std::string flag = std::string("--") + option.name;
  CLI::Option *added = nullptr;
  if constexpr (std::is_same_v<T, bool>) {
    added = cmd.add_flag(flag, field, option.help);
  } else if constexpr (is_named_enum_v<T>) {
    added = add_named_option(cmd, option.name, field, option.help);
  } else {
    added = cmd.add_option(flag, field, option.help)->capture_default_str();
    if (!option.choices.empty())
      added->check(one_of(option.choices));
  }
  added->group(group_title(option.group)); // the testing group's "" hides it from --help
}

// Every row of the option tables (config/options.h) as a flag of `cmd`.
void add_train_options(CLI::App &cmd, TrainConfig &config, FaultPlan &faults);

} // namespace hetrain
