#!/usr/bin/python3
"""PyTorch DDP (gloo) training a torchvision model on a hetrain dataset file, for bench/lan.sh:
what users would run instead of hetrain on a LAN. One process per host, started by bench/lan.sh
inside each simulated host's network namespace (scripts/lan-sim.sh exec) with RANK, WORLD_SIZE,
MASTER_ADDR (host 0's address), MASTER_PORT and GLOO_SOCKET_IFNAME (the host's interface) in the
environment, pinned like hetrain's ranks on that host.

The same problem as `hetrain train --model r18.pt` with the file of scripts/export_torchvision.py:
the model is built by that script's adapted_model() from the same seed, so both start from the
same weights; the data are normalised by the file's per-channel mean and std (as hetrain does);
the same global batch, micro-batch, optimizer and learning rate; one epoch of the same samples
(DistributedSampler: an even share of every global batch per rank, as DDP users do). The loss is
summed per sample and scaled by world / global batch, so that DDP's averaging all-reduce gives
the mean gradient over the global batch, as hetrain's. Micro-batches accumulate under no_sync(),
one all-reduce per global batch (forward and backward of the others under no_sync()),
overlapped with the last backward (DDP's buckets).

Rank 0 prints one JSON line: samples/s over the timed loop (after a barrier, to the barrier after
the last step), seconds, the mean training loss of the last step, each rank's own
forward+backward seconds and the test accuracy.

Facts that shaped it (bench/ddp_reference.py): torchrun is not used (ranks are started directly);
gloo can deadlock at exit, so every rank ends with a barrier and os._exit(0).
"""
import argparse
import contextlib
import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "scripts"))
from export_torchvision import adapted_model  # noqa: E402
from pytorch_reference import load  # noqa: E402


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--test-data")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--model-seed", type=int, default=1, help="export_torchvision.py's --seed")
    p.add_argument("--seed", type=int, default=1, help="the sampler's shuffle seed")
    p.add_argument("--global-batch", type=int, default=768)
    p.add_argument("--micro-batch", type=int, default=32)
    p.add_argument("--optimizer", choices=["adam", "momentum"], default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300, help="gloo's timeout, seconds")
    return p.parse_args()


def train_steps(a, ddp, opt, x, y, mine, world):
    """One epoch over this rank's samples; returns (samples, compute seconds, last step loss)."""
    per_rank = a.global_batch // world
    steps = (len(mine) + per_rank - 1) // per_rank
    compute, samples, last_loss = 0.0, 0, float("nan")
    ddp.train()
    for s in range(steps):
        step = mine[s * per_rank:(s + 1) * per_rank]
        opt.zero_grad()
        micro = [step[m:m + a.micro_batch] for m in range(0, len(step), a.micro_batch)]
        step_loss = 0.0
        for k, idx in enumerate(micro):
            t0 = time.perf_counter()
            # The forward too must run under no_sync(): DDP's forward prepares the reducer,
            # whose hooks then all-reduce in the backward whatever context that runs in. (With
            # only the backward under no_sync, as bench/ddp_reference.py does, the sim's counters
            # showed one all-reduce per micro-batch: 8x the bytes a step.)
            last = k + 1 == len(micro)
            with contextlib.nullcontext() if last else ddp.no_sync():
                summed = F.cross_entropy(ddp(x[idx]), y[idx], reduction="sum")
                # The last backward also runs the all-reduce (overlapped): counted as compute,
                # so these compute seconds are an upper bound.
                (summed * world / a.global_batch).backward()
            compute += time.perf_counter() - t0
            step_loss += float(summed)
        samples += len(step)
        opt.step()
        last_loss = step_loss / max(len(step), 1)
    return samples, compute, last_loss


def main():
    a = arguments()
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=a.timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.global_batch % world:
        sys.exit(f"ddp_train: --global-batch {a.global_batch} is not divisible by {world} ranks")
    torch.set_num_threads(a.threads)
    x, y, mean, std = load(a.data)
    torch.manual_seed(a.model_seed)
    model = adapted_model(a.arch, a.num_classes, x.shape[1])
    ddp = DistributedDataParallel(model)
    if a.optimizer == "adam":
        opt = torch.optim.Adam(ddp.parameters(), lr=a.lr)
    else:
        opt = torch.optim.SGD(ddp.parameters(), lr=a.lr, momentum=0.9)
    sampler = DistributedSampler(range(len(x)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=a.seed, drop_last=False)
    sampler.set_epoch(0)
    mine = torch.tensor(list(sampler))

    dist.barrier()
    start = time.perf_counter()
    samples, compute, last_loss = train_steps(a, ddp, opt, x, y, mine, world)
    dist.barrier()
    seconds = time.perf_counter() - start
    figures = torch.tensor([float(samples), compute, last_loss])
    gathered = [torch.zeros(3) for _ in range(world)]
    dist.all_gather(gathered, figures)
    if rank == 0:
        total = sum(int(g[0]) for g in gathered)
        result = {"tool": "ddp", "torch": torch.__version__, "arch": a.arch, "world": world,
                  "samples": total, "seconds": seconds, "samples_per_sec": total / seconds,
                  "final_train_loss": sum(float(g[2]) for g in gathered) / world,
                  "per_rank": [{"rank": r, "samples": int(g[0]), "compute_seconds": float(g[1])}
                               for r, g in enumerate(gathered)]}
        if a.test_data:
            tx, ty, _, _ = load(a.test_data, mean, std)
            model.eval()
            correct, loss = 0, 0.0
            with torch.no_grad():
                for i in range(0, len(tx), 256):
                    out = model(tx[i:i + 256])
                    correct += int((out.argmax(1) == ty[i:i + 256]).sum())
                    loss += float(F.cross_entropy(out, ty[i:i + 256], reduction="sum"))
            result["test_accuracy"] = correct / len(tx)
            result["test_loss"] = loss / len(tx)
        print(json.dumps(result), flush=True)
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
