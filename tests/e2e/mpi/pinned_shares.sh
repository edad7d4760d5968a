#!/usr/bin/env bash
# mpi.pinned_shares: a real speed asymmetry on one machine: trainers 1 and 2 share one CPU, trainer
# 3 has another alone (scripts/pin-rank.sh), so on an otherwise idle machine trainer 3 computes
# about 2x as fast as each other. With --balance benchmark and re-planning every 5 rounds (30
# rounds: the last check is after the last round) the final plan must follow the speeds rank 0
# measured (the summary's trainers[].samples_per_sec: the ones that check used, which its
# per-epoch table shows). Rank 0's rule: the shares
# in proportion to the speeds (largest remainder, at least 1 of the 8 micro-batches each), adopted
# unless that plan's estimated round (the slowest trainer's k * 32 / speed) is less than 5% shorter
# than the current one's. So the final plan's estimated round is within 1/0.95 of the proportional
# plan's (and 1% for the transfer term). With trainer 3 at least 1.5x as
# fast as each other that leaves only plans that give it more micro-batches than each (4,2,2 at
# 1.5x takes 2.67 units, 3,2,3 or 3,3,2 take 3, 12% more), which is checked too and is what
# happens on an idle machine. Other load on the machine can take the asymmetry away (seen on the
# 2-core VM while other builds and tests ran on it: 1.42x; with a busy loop on each core 1.43x,
# as expected for (2 + 1) / (1 + 1) = 1.5 at best): then only the rule is checked, and the case
# says so. Skipped (77) with fewer than 2 CPUs or without taskset.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_cpus 2 "trainers 1 and 2 share one CPU, trainer 3 has another"
command -v taskset >/dev/null || skip "no taskset (util-linux) to pin the trainers"
read -r cpu_a cpu_b < <($py -c 'import os; print(*sorted(os.sched_getaffinity(0))[:2])')
mpi 4 --bind-to none "$repo/scripts/pin-rank.sh" "1:$cpu_a 2:$cpu_a 3:$cpu_b" "$HETRAIN" train \
  --data "$train" --model cnn --epochs 1 --global-batch 256 --micro-batch 32 --threads 1 \
  --limit-train-samples 7680 --balance benchmark --rebalance-every 5 \
  --checkpoint-dir "$work/ck" --summary-json "$work/s.json" --progress-seconds 1000 \
  >"$work/log" 2>&1 || { tail -n 20 "$work/log"; fail "the run failed"; }
grep -E "plan|rank  host" "$work/log" || true # shown, not checked
$py - "$work/s.json" <<'PY'
import json, math, sys
s = json.load(open(sys.argv[1]))
share = {t["rank"]: t["share"] for t in s["trainers"]}
speed = {t["rank"]: t["samples_per_sec"] for t in s["trainers"]}  # rank 0's figures, as planned
ranks = sorted(speed)
assert ranks == [1, 2, 3], speed
K = sum(share.values())


def proportional(weights, total, minimum=1):  # schedule/plan.cpp largest_remainder
    quota = [total * w / sum(weights) for w in weights]
    out = [max(minimum, math.floor(q)) for q in quota]
    while sum(out) > total:
        i = max((i for i in range(len(out)) if out[i] > minimum), key=lambda i: (out[i] - quota[i], -i))
        out[i] -= 1
    while sum(out) < total:
        i = max(range(len(out)), key=lambda i: (quota[i] - out[i], -i))
        out[i] += 1
    return out


def round_time(shares):
    return max(k / speed[r] for r, k in zip(ranks, shares))


best = proportional([speed[r] for r in ranks], K)
final = [share[r] for r in ranks]
ratio = speed[3] / max(speed[1], speed[2])
print(f"final shares {final} of {K}; rank 0 measured samples/s {[round(speed[r]) for r in ranks]}: "
      f"trainer 3 {ratio:.3f}x as fast as the faster other; proportional plan {best}")
assert round_time(final) <= round_time(best) / 0.95 * 1.01, \
    f"the final plan {final} does not follow the measured speeds (proportional: {best})"
if ratio >= 1.5:
    assert share[3] > share[1] and share[3] > share[2], f"the faster trainer 3 got no more: {share}"
    print("trainer 3, alone on its CPU, got more micro-batches than each other")
else:
    print(f"note: other work on this machine took trainer 3's CPU ({ratio:.3f}x < 1.5x), so only "
          "the rule was checked, not the asymmetry")
PY
