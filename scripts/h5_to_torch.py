#!/usr/bin/env python3
"""Turns a hetrain checkpoint into a PyTorch state_dict for the equivalent PyTorch model.

    scripts/h5_to_torch.py CKPT.h5 OUT.pt [--evaluate TEST.h5] [--json]

The models are those of bench/pytorch_reference.py (Mlp, Cnn), whose parameter and buffer names are
hetrain's (fc1.weight, block1.bn.running_mean, ...), so the file loads with
`model.load_state_dict(torch.load(OUT.pt))`. Inputs must be normalised as hetrain does: pixels / 255,
then (x - norm_mean) / norm_std per channel, both stored in the checkpoint's attributes (and printed
here). With --evaluate the converted model is run on a hetrain dataset file and its accuracy
printed, which must match `hetrain evaluate`. Needs Debian's python3-torch and python3-h5py.
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from pytorch_reference import Cnn, Mlp  # noqa: E402  (the same models, defined once)


def fail(message):
    print(f"h5_to_torch: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_checkpoint(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"{path}: not a readable HDF5 file ({e})")
    with f:
        if f.attrs.get("format") not in ("hetrain-checkpoint", b"hetrain-checkpoint"):
            fail(f"{path}: not a hetrain checkpoint (no format=hetrain-checkpoint attribute)")
        attrs = {k: f.attrs[k] for k in f.attrs}
        tensors = {}
        for group in ("params", "buffers"):
            if group in f:
                for name in f[group]:
                    tensors[name] = torch.from_numpy(np.array(f[group][name][()]))
    model = attrs["model"].decode() if isinstance(attrs["model"], bytes) else str(attrs["model"])
    return model, attrs, tensors


def make_model(model, attrs):
    c, h, w = int(attrs["in_channels"]), int(attrs["height"]), int(attrs["width"])
    classes = int(attrs["num_classes"])
    if model == "mlp":
        return Mlp(c * h * w, classes)
    if model == "cnn":
        return Cnn(c, h, w, classes)
    fail(f"model '{model}' has no PyTorch equivalent here (mlp and cnn do)")


def evaluate(net, path, mean, std):
    with h5py.File(path, "r") as f:
        images, labels = f["images"], f["labels"][()].astype(np.int64)
        correct = 0
        net.eval()
        with torch.no_grad():
            for start in range(0, len(labels), 1000):
                x = images[start:start + 1000].astype(np.float32) / 255.0
                x = (x - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
                logits = net(torch.from_numpy(x))
                correct += int((logits.argmax(1).numpy() == labels[start:start + 1000]).sum())
    return correct / len(labels), len(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--evaluate", metavar="TEST.h5")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    model, attrs, tensors = read_checkpoint(a.checkpoint)
    net = make_model(model, attrs)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        fail(f"{a.checkpoint}: tensors do not match the PyTorch {model}: missing {missing}, "
             f"unexpected {extra}")
    state = {}
    for name, ref in expected.items():
        t = tensors[name].to(ref.dtype)
        if tuple(t.shape) != tuple(ref.shape):
            fail(f"{a.checkpoint}: {name} has shape {tuple(t.shape)}, the PyTorch {model} needs "
                 f"{tuple(ref.shape)}")
        state[name] = t
    net.load_state_dict(state)
    tmp = a.out + ".tmp"  # written beside and renamed: never a half-written file
    torch.save(state, tmp)
    os.replace(tmp, a.out)
    mean = np.array(attrs["norm_mean"], dtype=np.float32)
    std = np.array(attrs["norm_std"], dtype=np.float32)
    result = {"checkpoint": a.checkpoint, "out": a.out, "model": model,
              "norm_mean": mean.tolist(), "norm_std": std.tolist(), "tensors": len(state)}
    if a.evaluate:
        result["accuracy"], result["samples"] = evaluate(net, a.evaluate, mean, std)
    if a.json:
        print(json.dumps(result))
    else:
        print(f"wrote {a.out}: {len(state)} tensors of the PyTorch {model}; normalise inputs with "
              f"mean {mean.tolist()} std {std.tolist()} (of pixel/255)")
        if a.evaluate:
            print(f"accuracy on {a.evaluate}: {result['accuracy']:.4f} ({result['samples']} samples)")


if __name__ == "__main__":
    main()
