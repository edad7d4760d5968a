#!/usr/bin/env python3
"""Writes the TorchScript models the own-model tests train (issue 14) into OUTDIR.

usage: export_test_models.py OUTDIR [NAME ...]      (default: every model below)

  bn_dropout.pt       scripted CNN for 1x28x28, 10 classes, with BatchNorm2d and Dropout
                      (conv3x3(1,8)+BN+ReLU+maxpool, Linear(8*14*14,32)+ReLU, Dropout(0.3),
                      Linear(32,10)): mpi.script_model
  bn_no_dropout.pt    the same with Dropout(0.0) and the same initial weights: the control that
                      shows dropout is active in training (mpi.script_model)
  regression.pt       scripted MLP 8 -> 32 -> 32 -> 2 floats with an exported `loss` method (mean
                      squared error, PyTorch's mean reduction over the batch): mpi.model_loss
  frozen.pt           a classifier whose every parameter has requires_grad=False (bad input)
  no_loss.pt          a classifier without a `loss` method (bad input with --loss model)
  traced.pt           torch.jit.trace of a small classifier on a [2,1,28,28] batch
  resnet18_1ch.pt     torchvision resnet18(num_classes=10) whose conv1 takes 1 channel
                      (resnet18_1ch() below), scripted: mpi.torchvision_resnet
  not_torchscript.pt  torch.save(state_dict): a zip file that is NOT TorchScript (bad input)

Every model is built after torch.manual_seed(SEED) with its own fixed seed, so the files are the
same every time (TorchScript files are zip archives; their tensors are identical, the archive's
bytes may carry the export's code and are not compared).

The classes live in this file because TorchScript needs their source (a class typed into an
interactive session cannot be scripted). Tests import `resnet18_1ch` from here to rebuild the
Python model that a converted checkpoint (scripts/h5_to_torch.py) loads with strict=True.
Needs Debian's python3-torch (and python3-torchvision for resnet18_1ch.pt).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class BnDropout(nn.Module):
    """conv3x3(1,8)+BN+ReLU+maxpool, flatten, Linear(8*14*14,32)+ReLU, Dropout(0.3), Linear(32,10)."""

    def __init__(self, p: float = 0.3):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8 * 14 * 14, 32)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.out(self.drop(F.relu(self.fc1(x.flatten(1)))))


class Regression(nn.Module):
    """8 float features -> 2 float outputs; `loss` is the mean squared error over the batch."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 32)
        self.out = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))

    @torch.jit.export
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # PyTorch's default reduction: the mean over every element of the batch, i.e. the mean
        # over the samples of the per-sample mean over the 2 outputs (what the spec asks).
        return F.mse_loss(outputs, targets)


class SmallClassifier(nn.Module):
    """flatten, Linear(784,16), ReLU, Linear(16,10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 16)
        self.out = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.fc1(x.flatten(1))))


def resnet18_1ch(num_classes: int = 10) -> nn.Module:
    """torchvision's resnet18 with conv1 replaced by a 1-channel Conv2d(1, 64, 7, 2, 3, bias=False):
    the Python model a converted resnet18_1ch.pt checkpoint loads into (strict=True)."""
    import torchvision  # only this model needs it

    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def seeded(seed, build):
    torch.manual_seed(seed)
    return build()


def export_bn_dropout(path):
    torch.jit.script(seeded(1, BnDropout)).save(path)


def export_bn_no_dropout(path):
    # the same seed, so the same initial weights as bn_dropout.pt (Dropout has no parameters)
    torch.jit.script(seeded(1, lambda: BnDropout(0.0))).save(path)


def export_regression(path):
    torch.jit.script(seeded(2, Regression)).save(path)


def export_frozen(path):
    model = seeded(3, SmallClassifier)
    for p in model.parameters():
        p.requires_grad_(False)
    torch.jit.script(model).save(path)


def export_no_loss(path):
    torch.jit.script(seeded(4, SmallClassifier)).save(path)


def export_traced(path):
    model = seeded(5, SmallClassifier)
    example = torch.zeros(2, 1, 28, 28)
    with torch.no_grad():
        torch.jit.trace(model, example).save(path)


def export_resnet18_1ch(path):
    torch.jit.script(seeded(6, resnet18_1ch)).save(path)


def export_not_torchscript(path):
    torch.save(seeded(7, SmallClassifier).state_dict(), path)


EXPORTS = {
    "bn_dropout": export_bn_dropout,
    "bn_no_dropout": export_bn_no_dropout,
    "regression": export_regression,
    "frozen": export_frozen,
    "no_loss": export_no_loss,
    "traced": export_traced,
    "resnet18_1ch": export_resnet18_1ch,
    "not_torchscript": export_not_torchscript,
}


def main(argv):
    if len(argv) < 1 or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    out, names = argv[0], argv[1:] or list(EXPORTS)
    unknown = [n for n in names if n not in EXPORTS]
    if unknown:
        print(f"export_test_models: unknown model(s) {unknown}; known: {list(EXPORTS)}",
              file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    for name in names:
        path = os.path.join(out, name + ".pt")
        tmp = path + ".tmp"  # written beside and renamed: never a half-written file
        EXPORTS[name](tmp)
        os.replace(tmp, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
