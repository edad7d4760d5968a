#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, prepares the default data and
# runs every test with ctest. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/prepare-data.sh
# Open MPI refuses to run as root unless told that it is deliberate (containers, CI).
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Tests that take the machine (mpi, lan, slurm, accuracy: RUN_SERIAL) run alone; the rest (unit
# tests, fuzz replays) two or more at a time, one per core.
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@")
# Every libFuzzer target 20 s (two at a time), replaying its seed and regression inputs first.
# With arguments (a ctest selection such as -L unit) only those tests run.
if [ $# -eq 0 ]; then
  scripts/fuzz.sh smoke 20
fi
