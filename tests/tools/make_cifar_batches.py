#!/usr/bin/env python3
"""Writes small files in CIFAR-10's binary format (the tests cannot download the real ones).

usage: make_cifar_batches.py OUT.bin [--count N] [--seed S]

Each record is what cifar-10-batches-bin/data_batch_1.bin holds: 1 label byte (0..9), then 3072
pixel bytes, the 32x32 red plane, then green, then blue (row-major). The images are learnable:
  background  uniform noise 0..255 in every channel;
  class c     a 16x16 square, centred, of a fixed colour COLOURS[c] plus noise of +-40 (clipped).
The square survives `--augment crop,flip` (a shift of at most 4 pixels, a mirror), so a model that
learned it classifies the test file well above chance (0.1). Labels cycle through a shuffled
sequence of 0..9, so every class has N/10 records (+-1).
--seed (default 1) draws labels and noise; --count (default 500) is N. Needs python3-numpy.
"""
import argparse
import os

import numpy as np

# Ten colours far apart in RGB (the corners and edges of the cube, and grey).
COLOURS = np.array([
    [230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30], [230, 30, 230],
    [30, 230, 230], [240, 240, 240], [20, 20, 20], [128, 128, 128], [230, 130, 30],
], dtype=np.int32)
SIDE, SQUARE = 32, 16


def make(count, seed):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.permutation(10) for _ in range(count // 10 + 1)])[:count]
    pixels = rng.integers(0, 256, size=(count, 3, SIDE, SIDE), dtype=np.int32)
    lo = (SIDE - SQUARE) // 2
    square = COLOURS[labels][:, :, None, None] + rng.integers(
        -40, 41, size=(count, 3, SQUARE, SQUARE), dtype=np.int32)
    pixels[:, :, lo:lo + SQUARE, lo:lo + SQUARE] = square
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    records = np.empty((count, 1 + 3 * SIDE * SIDE), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = pixels.reshape(count, -1)
    return records


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.count < 1:
        p.error("--count must be at least 1")
    records = make(a.count, a.seed)
    tmp = a.out + ".tmp"
    records.tofile(tmp)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {a.count} CIFAR-10 records ({records.nbytes} bytes)")


if __name__ == "__main__":
    main()
