#!/usr/bin/env bash
# Fuzzes hetrain's parsers of outside input with libFuzzer (fuzz/README.md).
#   scripts/fuzz.sh TARGET SECONDS     one target (idx, cifar, image_folder, messages, checkpoint,
#                                      dataset, config, model_file), for SECONDS
#   scripts/fuzz.sh all SECONDS        every target in turn, SECONDS each
#   scripts/fuzz.sh smoke [SECONDS]    every target for 30 s (or SECONDS; CI runs 20 s), two at a
#                                      time; fails when any target finds a crash
# Builds build-fuzz/ (or $FUZZ_BUILD_DIR) with clang first. Each target starts from its seed
# corpus fuzz/corpus/TARGET (read only) and the inputs it found before, in
# build-fuzz/corpus/TARGET. A crash is written to build-fuzz/crashes/TARGET/ and the script exits
# non-zero; fix it, then copy the input into fuzz/corpus/TARGET as a regression input (every run
# replays the seed corpus first). Extra libFuzzer flags can go in $FUZZ_FLAGS; FUZZ_SKIP_BUILD=1
# uses build-fuzz/ as it is (for several runs side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(idx cifar image_folder messages checkpoint dataset config model_file)
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}

usage() {
  sed -n '2,13p' "$0" >&2
  exit 2
}
[ $# -ge 1 ] || usage
what=$1
seconds=${2:-30}
[[ "$seconds" =~ ^[0-9]+$ ]] || usage
if [ "$what" != all ] && [ "$what" != smoke ] && [[ ! " ${targets[*]} " == *" $what "* ]]; then
  echo "fuzz.sh: no target '$what' (targets: ${targets[*]})" >&2
  exit 2
fi

# The largest input each target tries: room for a few records, a small image folder, or the
# seed files (a checkpoint seed is ~20 KB).
max_len() {
  case $1 in
  cifar) echo 10000 ;;
  image_folder) echo 8192 ;;
  checkpoint | dataset | model_file) echo 65536 ;;
  *) echo 4096 ;;
  esac
}

build() {
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" -DHETRAIN_FUZZ=ON -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_TESTING=OFF -DHETRAIN_OPENCV=ON >/dev/null
  fi
  cmake --build "$build_dir" --target fuzz_targets -j "$(nproc)"
}

# Runs one target for $2 seconds; its log goes to build-fuzz/logs/TARGET.log.
run_one() {
  local target=$1 secs=$2
  mkdir -p "$build_dir/corpus/$target" "$build_dir/crashes/$target" "$build_dir/logs"
  local log="$build_dir/logs/$target.log"
  # detect_leaks=0: LibTorch and HDF5 keep process-lifetime allocations that are not ours.
  # allocator_may_return_null=1: an impossible malloc returns null as glibc's does (HDF5 reports
  # that as an error); sizes that are possible but large are caught by -malloc_limit_mb.
  # image_folder silences stderr while OpenCV decodes, so its sanitizer reports go to a file.
  local san=""
  [ "$target" = image_folder ] && san=":log_path=$(cd "$build_dir/logs" && pwd)/$target.sanitizer"
  rm -f "$build_dir/logs/$target.sanitizer".*
  if ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1$san" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1$san" \
    "$build_dir/fuzz/fuzz_$target" "$build_dir/corpus/$target" "fuzz/corpus/$target" \
    -max_total_time="$secs" -max_len="$(max_len "$target")" -timeout=20 -rss_limit_mb=3072 \
    -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$build_dir/crashes/$target/" ${FUZZ_FLAGS:-} >"$log" 2>&1; then
    echo "fuzz $target: ${secs} s, no crash: $(grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::new_units_added' "$log" | tr '\n' ' ')$(grep -Eo 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)"
  else
    echo "fuzz $target: FAILED (see $log; input in $build_dir/crashes/$target/)" >&2
    grep -hE 'ERROR|runtime error|terminate called|what\(\)|SUMMARY' "$log" \
      "$build_dir/logs/$target.sanitizer".* 2>/dev/null | head -5 >&2
    return 1
  fi
}

[ "${FUZZ_SKIP_BUILD:-0}" = 1 ] || build
case $what in
all)
  rc=0
  for t in "${targets[@]}"; do run_one "$t" "$seconds" || rc=1; done
  exit $rc
  ;;
smoke)
  # Two at a time: the machines CI runs on have two cores or more.
  rc=0
  for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for t in "${targets[@]:i:2}"; do
      run_one "$t" "$seconds" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
  done
  exit $rc
  ;;
*) run_one "$what" "$seconds" ;;
esac
