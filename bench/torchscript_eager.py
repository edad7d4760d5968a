#!/usr/bin/env python3
"""PyTorch eager side of bench/torchscript-speed.sh: the same torchvision model, data, batches and
threads as `hetrain train --model FILE.pt`, trained by a plain PyTorch loop (Debian's python3-torch).

    torchscript_eager.py data --out D.h5 --samples N --size S [--channels 3] [--classes 10]
        writes a random uint8 dataset in hetrain's format (/images [N,C,S,S], /labels int32 [N]).
    torchscript_eager.py train --data D.h5 --arch resnet18 --global-batch G --micro-batch M
        [--lr 0.01] [--threads T] [--epochs 1] [--device cpu] [--scripted FILE.pt]
        trains and prints one JSON line (tool, samples_per_sec, epoch_seconds, ...).

What is timed is what hetrain's summary JSON calls samples_per_sec: samples trained / the sum of
the epochs' seconds, where an epoch's seconds run from before the epoch's shuffle to after its last
optimizer step (src/run/training_run.cpp LocalRun::run, run_support.cpp finish_epoch/finish_run).
So the span covers, per step: gathering the micro-batches' uint8 rows, converting and normalising
them ((x/255 - mean) / std, as hetrain's Dataset::get), forward, summed cross-entropy, backward,
reading the loss and the number correct (hetrain reads both per micro-batch), and the SGD step.
Not timed, on either side: process start, imports, loading the data and the model, evaluation and
checkpoints.

Gradient accumulation as in hetrain: micro-batches of --micro-batch, loss summed per sample and
divided by the samples of the step, one SGD step per --global-batch (the last step of an epoch may
be shorter). With --scripted FILE.pt the loop trains that TorchScript file (torch.jit.load) instead
of the eager torchvision model: it tells the interpreter's cost in Python from hetrain's own.
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from export_torchvision import adapted_model  # noqa: E402  (same model builder as the export)


def write_data(a):
    """Random uint8 images and balanced labels in hetrain's dataset format (see README "Data")."""
    rng = np.random.default_rng(a.seed)
    images = rng.integers(0, 256, size=(a.samples, a.channels, a.size, a.size), dtype=np.uint8)
    labels = rng.permutation(np.arange(a.samples) % a.classes).astype(np.int32)
    with h5py.File(a.out, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        f.attrs["format"] = "hetrain-dataset"
        f.attrs["format_version"] = np.int64(1)
        # Statistics of pixel/255, per channel (uniform bytes: mean 0.5, std about 0.29).
        f.attrs["mean"] = np.full(a.channels, 0.5, dtype=np.float64)
        f.attrs["std"] = np.full(a.channels, 0.25, dtype=np.float64)
    print(f"wrote {a.out}: {a.samples} x {a.channels}x{a.size}x{a.size} uint8, {a.classes} classes")


def train(a):
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with h5py.File(a.data, "r") as f:
        images = torch.from_numpy(f["images"][()])  # uint8, kept in memory as hetrain does
        labels = torch.from_numpy(f["labels"][()].astype(np.int64))
        mean = torch.tensor(np.asarray(f.attrs["mean"], dtype=np.float32)).reshape(1, -1, 1, 1)
        inv_std = 1.0 / torch.tensor(np.asarray(f.attrs["std"], dtype=np.float32)).reshape(1, -1, 1, 1)
    n, c = images.shape[0], images.shape[1]
    classes = int(labels.max()) + 1
    device = torch.device(a.device)
    if a.scripted:
        model = torch.jit.load(a.scripted, map_location=device)
    else:
        model = adapted_model(a.arch, classes, c).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    epoch_seconds, loss_sum, correct = [], 0.0, 0
    for _ in range(a.epochs):
        # --- timed: the same span as hetrain's epoch seconds (see the docstring) ---
        start = time.perf_counter()
        order = torch.randperm(n)
        model.train()
        loss_sum, correct = 0.0, 0
        for s in range(0, n, a.global_batch):
            step = order[s:s + a.global_batch]
            opt.zero_grad()
            for m in range(0, len(step), a.micro_batch):
                idx = step[m:m + a.micro_batch]
                # Normalised on the CPU, then moved, as hetrain does (no-ops on the CPU).
                x = images[idx].to(torch.float32).mul_(1.0 / 255.0).sub_(mean).mul_(inv_std)
                x, y = x.to(device), labels[idx].to(device)
                logits = model(x)
                loss = F.cross_entropy(logits, y, reduction="sum")
                (loss / len(step)).backward()
                loss_sum += loss.item()
                correct += int(logits.argmax(1).eq(y).sum().item())
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds.append(time.perf_counter() - start)
        # --- end of the timed span ---
    print(json.dumps({"tool": "pytorch-scripted" if a.scripted else "pytorch",
                      "torch": torch.__version__, "arch": a.arch, "device": a.device,
                      "threads": torch.get_num_threads(),
                      "samples": n * a.epochs, "epoch_seconds": epoch_seconds,
                      "samples_per_sec": n * a.epochs / sum(epoch_seconds),
                      "final_train_loss": loss_sum / n, "final_train_accuracy": correct / n}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="write a random uint8 dataset in hetrain's format")
    d.add_argument("--out", required=True)
    d.add_argument("--samples", type=int, required=True)
    d.add_argument("--size", type=int, required=True, help="image height and width")
    d.add_argument("--channels", type=int, default=3)
    d.add_argument("--classes", type=int, default=10)
    d.add_argument("--seed", type=int, default=1)
    t = sub.add_parser("train", help="train one epoch (or --epochs) and print one JSON line")
    t.add_argument("--data", required=True)
    t.add_argument("--arch", default="resnet18", help="torchvision.models builder")
    t.add_argument("--scripted", help="train this TorchScript file instead of the eager model")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--global-batch", type=int, default=256)
    t.add_argument("--micro-batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--device", default="cpu", help="cpu | cuda (hetrain's --device)")
    a = p.parse_args()
    if a.command == "data":
        if a.samples < a.classes:
            p.error("--samples must be at least --classes, so that every class appears")
        write_data(a)
    else:
        train(a)


if __name__ == "__main__":
    main()
