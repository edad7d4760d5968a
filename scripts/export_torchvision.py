#!/usr/bin/env python3
r"""Export a torchvision model as a TorchScript file that `hetrain train --model FILE.pt` trains.

    /usr/bin/python3 scripts/export_torchvision.py --arch resnet18 --num-classes 10 --out r18.pt
    /usr/bin/python3 scripts/export_torchvision.py --arch resnet18 --num-classes 10 \
        --in-channels 1 --input-size 28 --out r18-gray.pt      # e.g. for Fashion-MNIST
    build/hetrain train --data data/fashion-mnist-train.h5 --model r18-gray.pt ...

What it does: seeds torch (--seed), builds `torchvision.models.<arch>(num_classes=K)` with random
weights (no download), and, when --in-channels is not 3, replaces the model's first Conv2d by one
with the same settings and C input channels (for the ResNets that is `conv1`). The scripted module
(`torch.jit.script`) is saved to --out; its weights are hetrain's starting point. It prints the
number of parameters and buffers (the state_dict hetrain's checkpoints store, by the same names).

To load hetrain's trained weights back into PyTorch, build the same model with the same adaptation
(`adapted_model` below does it) and `load_state_dict(..., strict=True)` the output of
`scripts/h5_to_torch.py`.

--input-size S runs one forward and backward pass on a random batch of 2 x C x S x S in train mode
before saving, to catch a model that does not fit the data's image size (e.g. too small for its
down-sampling) here rather than in hetrain.

Needs Debian's python3-torch and python3-torchvision (use /usr/bin/python3). Exit code 2 on bad
arguments or a model that cannot be scripted.
"""
import argparse
import sys

import torch
import torch.nn as nn
import torchvision


def first_conv(model):
    """(parent module, attribute name, conv) of the first nn.Conv2d in definition order."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return model.get_submodule(parent_name) if parent_name else model, attr, module
    return None


def adapted_model(arch, num_classes, in_channels=3):
    """torchvision.models.<arch>(num_classes=...), first Conv2d taking in_channels channels."""
    builder = getattr(torchvision.models, arch, None)
    if builder is None or not callable(builder) or arch.startswith("_"):
        raise ValueError(f"torchvision {torchvision.__version__} has no model '{arch}'")
    model = builder(num_classes=num_classes)
    if in_channels != 3:
        found = first_conv(model)
        if found is None:
            raise ValueError(f"{arch} has no Conv2d to adapt to {in_channels} input channels")
        parent, attr, conv = found
        if conv.groups != 1:
            raise ValueError(f"{arch}: the first Conv2d is grouped ({conv.groups}); adapt it by hand")
        setattr(parent, attr, nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size,
                                        stride=conv.stride, padding=conv.padding,
                                        dilation=conv.dilation, bias=conv.bias is not None,
                                        padding_mode=conv.padding_mode))
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--arch", required=True, help="a torchvision.models builder, e.g. resnet18, resnet50")
    p.add_argument("--num-classes", type=int, required=True, help="outputs of the classifier")
    p.add_argument("--in-channels", type=int, default=3, help="image channels (default 3)")
    p.add_argument("--input-size", type=int, default=0,
                   help="check one forward/backward pass on S x S images before saving")
    p.add_argument("--seed", type=int, default=1, help="torch.manual_seed before building (default 1)")
    p.add_argument("--out", required=True, help="the TorchScript file to write (.pt)")
    a = p.parse_args()
    if a.num_classes < 1 or a.in_channels < 1 or a.input_size < 0:
        p.error("--num-classes and --in-channels must be >= 1, --input-size >= 0")

    torch.manual_seed(a.seed)
    try:
        model = adapted_model(a.arch, a.num_classes, a.in_channels)
    except (ValueError, TypeError) as e:
        print(f"export_torchvision: {e}", file=sys.stderr)
        return 2
    model.train()
    if a.input_size:
        x = torch.randn(2, a.in_channels, a.input_size, a.input_size)
        try:
            out = model(x)
            out.float().sum().backward()
        except Exception as e:  # noqa: BLE001 - report whatever the model raised, in one line
            print(f"export_torchvision: {a.arch} fails on a batch of shape {list(x.shape)}: "
                  f"{str(e).splitlines()[0]}", file=sys.stderr)
            return 2
        model.zero_grad(set_to_none=True)
        # Undo the check's effect on BatchNorm running statistics: rebuild from the same seed.
        torch.manual_seed(a.seed)
        model = adapted_model(a.arch, a.num_classes, a.in_channels)
        model.train()
        print(f"{a.arch}: output {list(out.shape)} for input {list(x.shape)}")
    try:
        scripted = torch.jit.script(model)
    except Exception as e:  # noqa: BLE001
        print(f"export_torchvision: torch.jit.script({a.arch}) failed: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return 2
    scripted.save(a.out)

    params = list(model.parameters())
    buffers = list(model.buffers())
    print(f"{a.arch}: {sum(t.numel() for t in params)} parameters in {len(params)} tensors, "
          f"{len(buffers)} buffers ({sum(t.numel() for t in buffers)} values), "
          f"in_channels={a.in_channels}, num_classes={a.num_classes}, seed {a.seed} -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
