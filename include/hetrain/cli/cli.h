// The `hetrain` command line (README "Command line"): train, bench, data, inspect, evaluate.
#pragma once

namespace hetrain {

// Parses the command line and runs one subcommand. Returns the process exit code: 0 on success,
// kExitBadInput (2) for bad flags or input files, kExitInternal (1) when a library call fails.
int run_cli(int argc, char **argv);

} // namespace hetrain
