#!/usr/bin/env python3
"""Writes a float regression dataset in hetrain's dataset layout (the one mpi.model_loss trains).

usage: make_regression_data.py OUT.h5 [--count N] [--seed S]

  /inputs   float32 [N, 8]   standard normal features
  /targets  float32 [N, 2]   y = x A + 0.3 sin(x B), A and B [8,2] fixed random maps with entries
                             of standard deviation 1/sqrt(8) (drawn from seed 12345 whatever
                             --seed, so train and test sets made with different --seed share
                             them); no noise, so a small MLP brings the mean squared error from
                             ~1 to ~0.02 (measured in PyTorch: regression.pt, momentum lr 0.05,
                             batch 256, 5120 samples: 1.01 at the first step, 0.025 over epoch 5).
  root attrs format="hetrain-dataset", format_version=1 (no mean/std: float inputs are used as
  they are).

--seed (default 1) draws the inputs; --count (default 4096) is N. Writes to a temporary name and
renames, so a failed run leaves no OUT.h5. Needs python3-h5py and python3-numpy.
"""
import argparse
import os

import h5py
import numpy as np

FEATURES, OUTPUTS = 8, 2


def make(count, seed):
    fixed = np.random.default_rng(12345)
    a = fixed.normal(0.0, 1.0 / np.sqrt(FEATURES), size=(FEATURES, OUTPUTS))
    b = fixed.normal(0.0, 1.0 / np.sqrt(FEATURES), size=(FEATURES, OUTPUTS))
    x = np.random.default_rng(seed).normal(size=(count, FEATURES))
    y = x @ a + 0.3 * np.sin(x @ b)
    return x.astype(np.float32), y.astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=4096)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.count < 1:
        p.error("--count must be at least 1")
    x, y = make(a.count, a.seed)
    tmp = a.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f["inputs"], f["targets"] = x, y
        f.attrs["format"], f.attrs["format_version"] = "hetrain-dataset", np.int64(1)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {a.count} samples, inputs {list(x.shape)}, targets {list(y.shape)}, "
          f"target variance {float(y.var()):.3f}")


if __name__ == "__main__":
    main()
