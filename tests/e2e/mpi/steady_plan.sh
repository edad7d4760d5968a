#!/usr/bin/env bash
# mpi.steady_plan: with steady speeds the default re-planning (every 5 rounds, 5% rule, 10% to go
# back) changes the start-up plan at most once in a 2-epoch run (issue 28: no churn). 1 aggregator
# + 2 trainers, each trainer pinned to a CPU of its own (scripts/pin-rank.sh; rank 0 unpinned,
# it mostly waits), cnn, 2 epochs of 20 rounds: 8 re-plan checks. (Three trainers on 2 cores are
# not steady: the scheduler moves 30% of a core between them from one check to the next, and the
# re-plans then follow real changes.) Skipped (77) with fewer than 2 CPUs or without taskset.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_cpus 2 "each trainer on a CPU of its own"
command -v taskset >/dev/null || skip "no taskset (util-linux) to pin the trainers"
read -r cpu_a cpu_b < <($py -c 'import os; print(*sorted(os.sched_getaffinity(0))[:2])')
mpi 3 --bind-to none "$repo/scripts/pin-rank.sh" "1:$cpu_a 2:$cpu_b" "$HETRAIN" train \
  --data "$train" --model cnn --epochs 2 --global-batch 256 --micro-batch 32 \
  --limit-train-samples 5120 --threads 1 --seed 3 --progress-seconds 1000 \
  --checkpoint-dir "$work/ck" --summary-json "$work/s.json" >"$work/log" 2>&1 ||
  { tail -n 30 "$work/log" >&2; fail "the run failed"; }
$py - "$work/s.json" <<'PY'
import json, sys
history = json.load(open(sys.argv[1]))["plan_history"]
for p in history:
    print(p[:200])
assert history[0].startswith("start-up: "), history
assert len(history) <= 2, f"{len(history) - 1} re-plans with steady speeds (at most 1)"
PY
