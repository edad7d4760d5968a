#!/usr/bin/env python3
"""Turns a hetrain checkpoint into a PyTorch state_dict for the model it trained.

    scripts/h5_to_torch.py CKPT.h5 OUT.pt [--evaluate TEST.h5] [--json]

Built-in `mlp` / `cnn`: the state_dict of bench/pytorch_reference.py's Mlp / Cnn, whose parameter
and buffer names are hetrain's (fc1.weight, block1.bn.running_mean, ...), checked against them;
it loads with `model.load_state_dict(torch.load(OUT.pt))`.

Any other model (`--model FILE.pt`, a TorchScript file; `--model-plugin LIB.so:NAME`; the built-in
`resnet`): the checkpoint's /params, /buffers and /frozen tensors under their dotted state_dict
names, which together are the module's full state_dict. Load it into the Python model that was
exported (the same class, built the same way):

    model = MyModel()                      # what torch.jit.script / torch.jit.trace was given
    model.load_state_dict(torch.load("OUT.pt"), strict=True)

(or into the TorchScript file itself: `m = torch.jit.load("my.pt"); m.load_state_dict(...)`).

Inputs must be normalised as hetrain does: uint8 pixels / 255 (float inputs as they are), then
(x - norm_mean) / norm_std per channel, both stored in the checkpoint's attributes (and printed
here). --evaluate runs the converted model on a classification dataset file (/images + /labels,
or /inputs + integer /targets) and prints its accuracy, which must match `hetrain evaluate`. It
needs a Python model: Mlp / Cnn, or for a TorchScript model the .pt file that the checkpoint's
`model` attribute names (torch.jit.load; a relative path is taken from the current folder);
plugins and `resnet` have none here, so convert those without --evaluate. Bad input: one line
`h5_to_torch: error: ...`, exit 2, no output file. Needs Debian's python3-torch and python3-h5py.
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

BUILTIN = ("mlp", "cnn")  # the models with a Python class in bench/pytorch_reference.py
GROUPS = ("params", "buffers", "frozen")  # together: the module's full state_dict


def fail(message):
    print(f"h5_to_torch: error: {message}", file=sys.stderr)
    sys.exit(2)


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


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
        for group in GROUPS:
            if group not in f:
                continue
            found = []  # (dotted name, dataset): flat dotted names; nested groups joined by "."
            f[group].visititems(
                lambda name, obj: found.append((name.replace("/", "."), obj))
                if isinstance(obj, h5py.Dataset) else None)
            for name, dataset in found:
                if name in tensors:
                    fail(f"{path}: tensor '{name}' is stored twice (in /{group} and another group)")
                tensors[name] = torch.from_numpy(np.array(dataset[()]))
    if "model" not in attrs:
        fail(f"{path}: no 'model' attribute")
    return text(attrs["model"]), attrs, tensors


def make_builtin(model, attrs):
    c, h, w = int(attrs["in_channels"]), int(attrs["height"]), int(attrs["width"])
    classes = int(attrs["num_classes"])
    if model == "mlp":
        return Mlp(c * h * w, classes)
    return Cnn(c, h, w, classes)


def builtin_state(path, model, attrs, tensors):
    """The state_dict of the Python Mlp / Cnn, checked name by name and shape by shape."""
    net = make_builtin(model, attrs)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        fail(f"{path}: tensors do not match the PyTorch {model}: missing {missing}, "
             f"unexpected {extra}")
    state = {}
    for name, ref in expected.items():
        t = tensors[name].to(ref.dtype)
        if tuple(t.shape) != tuple(ref.shape):
            fail(f"{path}: {name} has shape {tuple(t.shape)}, the PyTorch {model} needs "
                 f"{tuple(ref.shape)}")
        state[name] = t
    net.load_state_dict(state)
    return net, state


def script_model(model, state):
    """The TorchScript file the checkpoint's `model` attribute names, with `state` loaded."""
    if model.startswith("plugin:") or not os.path.isfile(model):
        fail(f"--evaluate needs a Python model: model '{model}' is not a TorchScript file found "
             f"from here (a plugin, the built-in resnet, or a file moved since): convert without "
             f"--evaluate and load the state_dict into your model")
    try:
        net = torch.jit.load(model, map_location="cpu")
    except Exception as e:  # noqa: BLE001  (torch raises RuntimeError or others)
        fail(f"--evaluate: cannot load {model} with torch.jit.load ({str(e).splitlines()[0]})")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail(f"--evaluate: the checkpoint's tensors do not fit {model}: {str(e).splitlines()[0]}")
    return net


def read_dataset(f, path):
    """(inputs, integer labels) of a dataset file: /images + /labels or /inputs + /targets."""
    if "images" in f and "labels" in f:
        return f["images"], f["labels"][()]
    if "inputs" in f and "targets" in f:
        labels = f["targets"][()]
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            fail(f"--evaluate {path}: /targets are not class labels (integers [N]): accuracy "
                 f"is for classification datasets")
        return f["inputs"], labels
    fail(f"--evaluate {path}: not a dataset file (no /images + /labels or /inputs + /targets)")


def normalised(batch, mean, std):
    x = batch.astype(np.float32)
    if batch.dtype == np.uint8:
        x = x / 255.0
    if mean.size == 1:  # one value for every element
        return (x - mean[0]) / std[0]
    shape = [1, -1] + [1] * (x.ndim - 2)  # one per channel (dim 1)
    return (x - mean.reshape(shape)) / std.reshape(shape)


def evaluate(net, path, mean, std):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"--evaluate {path}: not a readable HDF5 file ({e})")
    with f:
        inputs, labels = read_dataset(f, path)
        labels = labels.astype(np.int64)
        correct = 0
        net.eval()
        with torch.no_grad():
            for start in range(0, len(labels), 1000):
                x = normalised(inputs[start:start + 1000], mean, std)
                logits = net(torch.from_numpy(np.ascontiguousarray(x)))
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
    if model in BUILTIN:
        net, state = builtin_state(a.checkpoint, model, attrs, tensors)
        kind = f"the PyTorch {model}"
    else:
        if not tensors:
            fail(f"{a.checkpoint}: no tensors under /params, /buffers or /frozen")
        state = dict(sorted(tensors.items()))
        net = script_model(model, state) if a.evaluate else None
        kind = f"the state_dict of model '{model}'"
    mean = np.array(attrs.get("norm_mean", [0.0]), dtype=np.float32).reshape(-1)
    std = np.array(attrs.get("norm_std", [1.0]), dtype=np.float32).reshape(-1)
    result = {"checkpoint": a.checkpoint, "out": a.out, "model": model,
              "norm_mean": mean.tolist(), "norm_std": std.tolist(), "tensors": len(state)}
    if a.evaluate:
        result["accuracy"], result["samples"] = evaluate(net, a.evaluate, mean, std)
    tmp = a.out + ".tmp"  # written beside and renamed: never a half-written file
    torch.save(state, tmp)
    os.replace(tmp, a.out)
    if a.json:
        print(json.dumps(result))
    else:
        print(f"wrote {a.out}: {len(state)} tensors, {kind}; normalise inputs with "
              f"mean {mean.tolist()} std {std.tolist()} (of pixel/255 for uint8 images)")
        if a.evaluate:
            print(f"accuracy on {a.evaluate}: {result['accuracy']:.4f} ({result['samples']} samples)")


if __name__ == "__main__":
    main()
