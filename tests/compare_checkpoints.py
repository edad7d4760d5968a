#!/usr/bin/env python3
"""Compares the parameters of two hetrain checkpoints: every tensor must be within RTOL relative
(L2 norm of the difference over the L2 norm of the reference). Exit 0 when all are, 1 otherwise.
Usage: compare_checkpoints.py REFERENCE.h5 OTHER.h5 [RTOL=1e-4]"""
import sys

import h5py
import numpy as np

ref_path, other_path = sys.argv[1], sys.argv[2]
rtol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4
worst = 0.0
with h5py.File(ref_path, "r") as ref, h5py.File(other_path, "r") as other:
    names = list(ref["params"])
    if names != list(other["params"]):
        print(f"parameter names differ: {names} vs {list(other['params'])}")
        sys.exit(1)
    for name in names:
        a, b = ref["params"][name][()], other["params"][name][()]
        if a.shape != b.shape:
            print(f"{name}: shape {a.shape} vs {b.shape}")
            sys.exit(1)
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))
        worst = max(worst, rel)
        print(f"{name}: relative L2 difference {rel:.3e}")
print(f"worst {worst:.3e} (tolerance {rtol:g})")
sys.exit(0 if worst <= rtol else 1)
