#!/usr/bin/env python3
"""Compares the parameters of two hetrain checkpoints, tensor by tensor.

usage: compare_checkpoints.py [--optimizer] [--buffers] [--exact | --print-worst] [--quiet] REF.h5 OTHER.h5
                              [RTOL]

Prints, per tensor, the relative L2 difference (L2 norm of the difference over the L2 norm of the
reference) and the largest absolute difference, then the worst of each.
  RTOL (default 1e-4)  exit 0 when every tensor's relative L2 difference is <= RTOL, else 1.
  --exact              bit-identity instead: exit 0 only when every tensor is identical (largest
                       absolute difference exactly 0), for runs that do the same computation; the
                       whole state: the parameters, the buffers (BatchNorm running statistics),
                       the frozen parameters, the optimizer state and the trainers' own
                       optimizers (/trainer_optimizers, --sync params/diloco), where the
                       reference has them (the k-th trainer by world rank against the k-th).
  --print-worst        measure only: print nothing but the worst relative L2 difference (a number
                       for the caller's arithmetic); exit 0 whatever it is.
  --optimizer          the optimizer state tensors (exp_avg, momentum_buffer, ...) and the step
                       count too: a sharded job (--aggregators) must gather every shard's state.
  --buffers            the buffers too (BatchNorm running statistics, ...: float ones within RTOL
                       like the parameters, integer ones such as num_batches_tracked must be
                       equal) and the frozen parameters (/frozen) where the reference has them:
                       a model whose buffers are split-independent (issue 14's rule).
  --quiet              the last line only.
Names or shapes that differ, or another optimizer step count, always fail (exit 1)."""
import sys

import h5py
import numpy as np

flags = {a for a in sys.argv[1:] if a.startswith("--")}
args = [a for a in sys.argv[1:] if not a.startswith("--")]
unknown = flags - {"--optimizer", "--buffers", "--exact", "--print-worst", "--quiet"}
if unknown or len(args) not in (2, 3) or {"--exact", "--print-worst"} <= flags:
    print(__doc__, file=sys.stderr)
    sys.exit(2)
with_optimizer = "--optimizer" in flags
with_buffers = "--buffers" in flags
exact = "--exact" in flags
measure = "--print-worst" in flags
quiet = "--quiet" in flags or measure
ref_path, other_path = args[0], args[1]
rtol = float(args[2]) if len(args) > 2 else 1e-4
worst_rel = 0.0
worst_abs = 0.0
worst_name = ""


def say(line):
    if not quiet:
        print(line)


def broken(line):
    print(line, file=sys.stderr)
    sys.exit(1)


def compare(group, ref, other, integers_equal=False, other_group=None):
    """Every tensor of `group` (in `other`: of `other_group`, the same by default); with
    integers_equal an integer tensor that differs at all fails."""
    global worst_rel, worst_abs, worst_name
    other_group = other_group or group
    if other_group not in other:
        broken(f"{other_group}: missing in {other_path}")
    names = sorted(ref[group])
    if names != sorted(other[other_group]):
        broken(f"{group}: names differ: {names} vs {sorted(other[other_group])}")
    for name in names:
        a, b = ref[group][name][()], other[other_group][name][()]
        if a.shape != b.shape:
            broken(f"{group}/{name}: shape {a.shape} vs {b.shape}")
        if integers_equal and np.issubdtype(a.dtype, np.integer) and not np.array_equal(a, b):
            broken(f"{group}/{name}: integer tensors differ: {a.tolist()} vs {b.tolist()}")
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        max_abs = float(diff.max()) if diff.size else 0.0
        rel = float(np.linalg.norm(diff) / max(np.linalg.norm(a.astype(np.float64)), 1e-30))
        if rel > worst_rel:
            worst_name = f"{group}/{name}"
        worst_rel = max(worst_rel, rel)
        worst_abs = max(worst_abs, max_abs)
        say(f"{group}/{name}: relative L2 difference {rel:.3e}, max abs difference {max_abs:.3e}")


with h5py.File(ref_path, "r") as ref, h5py.File(other_path, "r") as other:
    compare("params", ref, other)
    if exact and "buffers" in ref and len(ref["buffers"]):
        if "buffers" not in other:
            broken("buffers: missing in the other checkpoint")
        compare("buffers", ref, other)
    elif with_buffers and "buffers" in ref and len(ref["buffers"]):
        compare("buffers", ref, other, integers_equal=True)
    if (exact or with_buffers) and "frozen" in ref and len(ref["frozen"]):
        compare("frozen", ref, other)
    if with_optimizer or (exact and "optimizer" in ref):
        groups = sorted(k for k in ref["optimizer"] if isinstance(ref["optimizer"][k], h5py.Group))
        if not groups and not exact:
            broken("no optimizer state in the reference (use an optimizer with state)")
        for g in groups:
            compare(f"optimizer/{g}", ref, other)
        steps = [dict(f["optimizer"].attrs).get("step") for f in (ref, other)]
        steps = [None if s is None else int(s) for s in steps]
        say(f"optimizer steps {steps[0]} vs {steps[1]}")
        if steps[0] != steps[1]:
            broken(f"optimizer steps differ: {steps[0]} vs {steps[1]}")
    if exact and "trainer_optimizers" in ref:
        if "trainer_optimizers" not in other:
            broken("trainer_optimizers: missing in the other checkpoint")
        # The k-th trainer against the k-th, in world-rank order: a job with more --aggregators
        # has the same trainers at higher world ranks.
        by_rank = [sorted(f["trainer_optimizers"], key=lambda r: int(r[len("rank"):]))
                   for f in (ref, other)]
        if len(by_rank[0]) != len(by_rank[1]):
            broken(f"trainer_optimizers: {by_rank[0]} vs {by_rank[1]}")
        for rank, other_rank in zip(*by_rank):
            for g in sorted(ref["trainer_optimizers"][rank]):
                compare(f"trainer_optimizers/{rank}/{g}", ref, other,
                        other_group=f"trainer_optimizers/{other_rank}/{g}")
            steps = [int(ref["trainer_optimizers"][rank].attrs["step"]),
                     int(other["trainer_optimizers"][other_rank].attrs["step"])]
            if steps[0] != steps[1]:
                broken(f"trainer_optimizers/{rank} vs {other_rank}: steps differ: {steps[0]} vs "
                       f"{steps[1]}")
if measure:
    print(f"{worst_rel:.6e}")
    sys.exit(0)
where = f" ({worst_name})" if worst_name else ""
if exact:
    print(f"max abs difference {worst_abs:.3e}, worst relative L2 {worst_rel:.3e}{where} "
          f"(must be exactly 0)")
    sys.exit(0 if worst_abs == 0.0 else 1)
print(f"worst relative L2 difference {worst_rel:.3e}{where}, max abs difference {worst_abs:.3e} "
      f"(tolerance {rtol:g})")
sys.exit(0 if worst_rel <= rtol else 1)
