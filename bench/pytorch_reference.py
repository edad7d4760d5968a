#!/usr/bin/env python3
"""The same mlp / cnn and the same training settings as `hetrain train`, in PyTorch (Debian's
python3-torch), for a side-by-side speed comparison on one process (bench/compare-pytorch.sh).

Gradient accumulation as in hetrain: micro-batches of --micro-batch, loss summed per sample and
divided by the samples of the step, one optimizer step per --global-batch. Prints one JSON line.
"""
import argparse
import json
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self, inputs, classes):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(inputs, 128), nn.Linear(128, 128), nn.Linear(128, 128)
        self.out = nn.Linear(128, classes)

    def forward(self, x):
        x = x.flatten(1)
        return self.out(F.relu(self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))))


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)


class Cnn(nn.Module):
    def __init__(self, channels, height, width, classes):
        super().__init__()
        self.block1, self.block2 = ConvBlock(channels, 32), ConvBlock(32, 64)
        self.fc1 = nn.Linear(64 * (height // 4) * (width // 4), 128)
        self.out = nn.Linear(128, classes)

    def forward(self, x):
        return self.out(F.relu(self.fc1(self.block2(self.block1(x)).flatten(1))))


def load(path, mean=None, std=None):
    with h5py.File(path, "r") as f:
        images = f["images"][()].astype(np.float32) / 255.0
        labels = f["labels"][()].astype(np.int64)
        mean = np.array(f.attrs["mean"] if mean is None else mean, dtype=np.float32)
        std = np.array(f.attrs["std"] if std is None else std, dtype=np.float32)
    images = (images - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
    return torch.from_numpy(images), torch.from_numpy(labels), mean, std


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--test-data")
    p.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--global-batch", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y, mean, std = load(a.data)
    n, c, h, w = x.shape
    classes = int(y.max()) + 1
    model = Mlp(c * h * w, classes) if a.model == "mlp" else Cnn(c, h, w, classes)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    epoch_seconds = []
    for epoch in range(a.epochs):
        order = torch.randperm(n)
        model.train()
        start = time.perf_counter()
        for s in range(0, n, a.global_batch):
            step = order[s:s + a.global_batch]
            opt.zero_grad()
            for m in range(0, len(step), a.micro_batch):
                idx = step[m:m + a.micro_batch]
                loss = F.cross_entropy(model(x[idx]), y[idx], reduction="sum") / len(step)
                loss.backward()
            opt.step()
        epoch_seconds.append(time.perf_counter() - start)
    result = {"tool": "pytorch", "torch": torch.__version__, "model": a.model,
              "threads": torch.get_num_threads(), "epoch_seconds": epoch_seconds,
              "samples_per_sec": n * a.epochs / sum(epoch_seconds)}
    if a.test_data:
        tx, ty, _, _ = load(a.test_data, mean, std)
        model.eval()
        with torch.no_grad():
            result["test_accuracy"] = float((model(tx).argmax(1) == ty).float().mean())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
