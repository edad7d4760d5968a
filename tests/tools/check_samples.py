"""Every sample used exactly once per epoch, from the trainers' own --debug-sample-log records.

usage: check_samples.py PREFIX SAMPLES EPOCHS [TRAINERS]

Each record line is "epoch step attempt index". A round redone after a lost trainer
(--on-trainer-loss continue) has a higher attempt number; only the samples of a step's last
attempt went into the gradient that was applied, so those are the ones counted.
"""
import collections
import glob
import sys

prefix, samples, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(glob.glob(prefix + ".rank*"))
if len(sys.argv) > 4:
    assert len(files) == int(sys.argv[4]), f"expected records from {sys.argv[4]} trainers: {files}"
records = []
for f in files:
    for line in open(f):
        records.append(tuple(map(int, line.split())))
last_attempt = collections.defaultdict(int)
for epoch, step, attempt, _ in records:
    last_attempt[(epoch, step)] = max(last_attempt[(epoch, step)], attempt)
counts = collections.Counter(
    (epoch, index) for epoch, step, attempt, index in records
    if attempt == last_attempt[(epoch, step)])
for epoch in range(epochs):
    bad = {i: counts[(epoch, i)] for i in range(samples) if counts[(epoch, i)] != 1}
    assert not bad, f"epoch {epoch}: indices not used exactly once: {list(bad.items())[:10]}"
extra = [k for k in counts if k[1] >= samples or not 0 <= k[0] < epochs]
assert not extra, f"unexpected records {extra[:5]}"
redone = sorted(k for k, a in last_attempt.items() if a > 0)
print(f"exactly once: {epochs} epochs x {samples} samples over {len(files)} trainers; "
      f"rounds redone (epoch, step): {redone}")
