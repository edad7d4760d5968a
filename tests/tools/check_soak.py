#!/usr/bin/python3
"""The checks of scripts/soak-preemptions.sh, from the trainers' own --debug-sample-log records.

usage: check_soak.py SAMPLES EPOCHS PREFIX[:STEP]... (one --debug-sample-log prefix per run, in
order; STEP: the step of the checkpoint the run stopped with, absent for the run that finished)

Each record line is "epoch step attempt index" (step: the global step count before the update
the sample's gradient went into, so a checkpoint at step S holds the records of steps < S). Run k resumed from the checkpoint run k-1 wrote, so for each (epoch, step) the records of
the last run that has it are the ones whose gradient was applied, and within that run the step's
last attempt (a round redone after a lost trainer). Checked and printed:
  - every sample of every epoch used exactly once;
  - steps a run computed after its checkpoint (a round abandoned by the preemption: lost work,
    but after the checkpoint, so redone by the next run): counted;
  - steps up to a run's checkpoint computed again by a later run: work lost before the
    checkpoint, which must be none.
"""
import collections
import glob
import json
import sys

samples, epochs, args = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
runs, stops = [], []  # per run: {(epoch, step): [(attempt, index), ...]}; its checkpoint step
for arg in args:
    prefix, _, stop = arg.partition(":")
    steps = collections.defaultdict(list)
    for f in sorted(glob.glob(prefix + ".rank*")):
        for line in open(f):
            epoch, step, attempt, index = map(int, line.split())
            steps[(epoch, step)].append((attempt, index))
    runs.append(steps)
    stops.append(int(stop) if stop else None)
owner = {}  # (epoch, step) -> the last run that computed it
redone, beyond = [], 0
for k, steps in enumerate(runs):
    for key in steps:
        if key in owner:
            j = owner[key]
            if stops[j] is not None and key[1] >= stops[j]:
                beyond += 1  # after run j's checkpoint: abandoned there, redone here
            else:
                redone.append((key, j, k))
        owner[key] = k
counts = collections.Counter()
for key, k in owner.items():
    records = runs[k][key]
    last = max(a for a, _ in records)
    for attempt, index in records:
        if attempt == last:
            counts[(key[0], index)] += 1
bad = {(e, i): counts[(e, i)] for e in range(epochs) for i in range(samples) if counts[(e, i)] != 1}
extra = [k for k in counts if k[1] >= samples or not 0 <= k[0] < epochs]
result = {
    "runs": len(runs),
    "steps": len(owner),
    "samples_checked": sum(counts.values()),
    "rounds_redone_after_a_lost_trainer": sum(
        1 for key, k in owner.items() if max(a for a, _ in runs[k][key]) > 0),
    "steps_abandoned_after_a_checkpoint_and_redone": beyond,
    "steps_lost_before_a_checkpoint": len(redone),
    "samples_not_used_exactly_once": len(bad),
}
print(json.dumps(result))
assert not bad, f"not used exactly once (epoch, index): count {list(bad.items())[:10]}"
assert not extra, f"unexpected records {extra[:5]}"
assert not redone, f"steps up to a checkpoint computed again ((epoch, step), run, again in run): {redone[:10]}"
