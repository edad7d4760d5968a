#!/usr/bin/env bash
# Configures and builds hetrain into build/ (or $BUILD_DIR). Extra arguments go to cmake, e.g.
#   scripts/build.sh -DHETRAIN_CUDA=OFF
#   scripts/build.sh -DCMAKE_PREFIX_PATH=/path/to/libtorch     (a CUDA LibTorch)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DHETRAIN_OPENCV=ON "$@"
cmake --build "$build_dir" -j "$(nproc)"
