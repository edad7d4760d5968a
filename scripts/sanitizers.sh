#!/usr/bin/env bash
# Builds hetrain with the sanitizers and runs tests under them (README, "Sanitizers").
#   scripts/sanitizers.sh address [CTEST ARGS]   build-asan/ (ASan + UBSan); without CTEST ARGS:
#                                                the unit, fuzz and mpi labels
#   scripts/sanitizers.sh thread [CTEST ARGS]    build-tsan/ (TSan); without CTEST ARGS: the tests
#                                                of the threaded parts (below)
# SANITIZE_BUILD_DIR=DIR builds in DIR instead. Each sanitized process writes its reports to
# BUILD/sanitizer-reports/report.PID; the script prints how many processes reported and the first
# lines of each, and exits non-zero when one did or a test failed. LibTorch, Open MPI and HDF5 stay Debian's uninstrumented builds
# (tests/tools/tsan.supp says what that means for TSan).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
case $kind in
address) dir=${SANITIZE_BUILD_DIR:-build-asan} sanitize=address,undefined
  default=(-L 'unit|fuzz|mpi') ;;
thread) dir=${SANITIZE_BUILD_DIR:-build-tsan} sanitize=thread
  # The loader thread (every training: LocalTraining, EndToEnd, Resume, the mpi cases), the
  # chunk reducer's threads (ChunkReducer, mpi.overlap, mpi.aggregators), the heartbeat thread
  # (mpi.rank0_lost), the finalize watchdog (mpi.finalize_deadline), the stall inspector
  # (mpi.straggler), the timeline and metrics writers (Timeline, mpi.observe), the image
  # decoders (ImageFolder), the forked read check (CrashGuard).
  default=(-R '^(ChunkReducer|Timeline|Prometheus|LocalTraining|Overlap|EndToEnd|Resume|ImageFolder|CrashGuard)\.|^mpi\.(exactness|overlap|aggregators|rank0_lost|finalize_deadline|straggler|observe)$') ;;
*) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || set -- "${default[@]}"

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHETRAIN_CUDA=OFF -DHETRAIN_OPENCV=ON \
  -DHETRAIN_SANITIZE="$sanitize" >/dev/null
cmake --build "$dir" -j "$(nproc)"
scripts/prepare-data.sh >/dev/null

reports=$(cd "$dir" && pwd)/sanitizer-reports
rm -rf "$reports" && mkdir -p "$reports"
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# detect_leaks=0: the libraries' one-time allocations at exit are not ours.
export ASAN_OPTIONS="detect_leaks=0:log_path=$reports/report"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/report"
export TSAN_OPTIONS="log_path=$reports/report:suppressions=$PWD/tests/tools/tsan.supp:second_deadlock_stack=1"
rc=0
(cd "$dir" && ctest --output-on-failure --timeout 1200 "$@") || rc=$?
shopt -s nullglob
files=("$reports"/report.*)
echo "sanitizers ($sanitize): ${#files[@]} process(es) reported"
for f in "${files[@]}"; do
  echo "--- $f"
  grep -E 'ERROR|WARNING|runtime error|SUMMARY' "$f" | head -5
done
[ ${#files[@]} -eq 0 ] || rc=1
exit $rc
