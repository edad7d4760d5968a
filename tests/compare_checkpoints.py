#!/usr/bin/env python3
"""Compares the parameters of two hetrain checkpoints: every tensor must be within RTOL relative
(L2 norm of the difference over the L2 norm of the reference). Exit 0 when all are, 1 otherwise.
With --optimizer the optimizer state tensors (exp_avg, momentum_buffer, ...) and the step count
are compared too: a sharded job (--aggregators) must gather every shard's state.
Usage: compare_checkpoints.py [--optimizer] REFERENCE.h5 OTHER.h5 [RTOL=1e-4]"""
import sys

import h5py
import numpy as np

args = sys.argv[1:]
with_optimizer = "--optimizer" in args
args = [a for a in args if a != "--optimizer"]
ref_path, other_path = args[0], args[1]
rtol = float(args[2]) if len(args) > 2 else 1e-4
worst = 0.0


def compare(group, ref, other):
    global worst
    names = sorted(ref[group])
    if names != sorted(other[group]):
        print(f"{group}: names differ: {names} vs {sorted(other[group])}")
        sys.exit(1)
    for name in names:
        a, b = ref[group][name][()], other[group][name][()]
        if a.shape != b.shape:
            print(f"{group}/{name}: shape {a.shape} vs {b.shape}")
            sys.exit(1)
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))
        worst = max(worst, rel)
        print(f"{group}/{name}: relative L2 difference {rel:.3e}")


with h5py.File(ref_path, "r") as ref, h5py.File(other_path, "r") as other:
    compare("params", ref, other)
    if with_optimizer:
        groups = sorted(k for k in ref["optimizer"] if isinstance(ref["optimizer"][k], h5py.Group))
        if not groups:
            print("no optimizer state in the reference (use an optimizer with state)")
            sys.exit(1)
        for g in groups:
            compare(f"optimizer/{g}", ref, other)
        steps = [dict(f["optimizer"].attrs).get("step") for f in (ref, other)]
        steps = [None if s is None else int(s) for s in steps]
        print(f"optimizer steps {steps[0]} vs {steps[1]}")
        if steps[0] != steps[1]:
            sys.exit(1)
print(f"worst {worst:.3e} (tolerance {rtol:g})")
sys.exit(0 if worst <= rtol else 1)
