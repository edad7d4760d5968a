#!/usr/bin/python3
"""PyTorch DDP on the same problem as `hetrain train`, for bench/hetero.sh: what users would run
instead. Debian's python3-torch, gloo backend, DistributedSampler (an even split of every global
batch), the same Mlp / Cnn as bench/pytorch_reference.py, Adam, micro-batches accumulated under
no_sync() with one all-reduce per global batch.

Started once per rank by bench/hetero.sh (and by bench/slow-links.sh, in each simulated host's
namespace with GLOO_SOCKET_IFNAME) with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the
environment (and pinned with taskset, which pins every thread the process will start). Rank 0
prints one JSON line: samples/s over the timed loop, each rank's own forward+backward seconds and
the test accuracy; with --epochs, `history` holds each epoch's training seconds (evaluation,
by rank 0 while the others wait, not counted) and test accuracy, as hetrain's summary does.

Facts that shaped it (Debian torch 1.13, Python 3.11): torchrun needs `-r 1 -t 1`, so ranks are
started directly; gloo can deadlock at exit, so every rank ends with a barrier and os._exit(0);
GLOO_SOCKET_IFNAME=lo and MASTER_ADDR=127.0.0.1 keep it on loopback.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import Cnn, Mlp, load  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--test-data")
    p.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    p.add_argument("--samples", type=int, default=0, help="first N training samples (0 = all)")
    p.add_argument("--global-batch", type=int, default=384)
    p.add_argument("--micro-batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.global_batch % world:
        sys.exit(f"ddp_reference: --global-batch {a.global_batch} is not divisible by {world} ranks")
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    x, y, mean, std = load(a.data)
    if a.samples:
        x, y = x[:a.samples], y[:a.samples]
    n, c, h, w = x.shape
    classes = int(y.max()) + 1
    model = Mlp(c * h * w, classes) if a.model == "mlp" else Cnn(c, h, w, classes)
    ddp = DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=a.lr)
    # An even share of every global batch: G / world samples per rank and step.
    per_rank = a.global_batch // world
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                                 seed=a.seed, drop_last=False)
    tx = ty = None
    if a.test_data and rank == 0:
        tx, ty, _, _ = load(a.test_data, mean, std)
    seconds, compute, samples, history = 0.0, 0.0, 0, []
    for epoch in range(a.epochs):
        sampler.set_epoch(epoch)
        mine = torch.tensor(list(sampler))
        dist.barrier()
        start = time.perf_counter()
        done, used = train_epoch(a, ddp, opt, x, y, mine, per_rank)
        dist.barrier()
        history.append({"epoch": epoch + 1, "seconds": time.perf_counter() - start})
        seconds += history[-1]["seconds"]
        compute += done
        samples += used
        if tx is not None:
            history[-1]["test_accuracy"] = evaluate(model, tx, ty)
    figures = torch.tensor([float(samples), compute])
    gathered = [torch.zeros(2) for _ in range(world)]
    dist.all_gather(gathered, figures)
    if rank == 0:
        total = sum(int(g[0]) for g in gathered)
        result = {"tool": "ddp", "torch": torch.__version__, "model": a.model, "world": world,
                  "samples": total, "seconds": seconds, "samples_per_sec": total / seconds,
                  "per_rank": [{"rank": r, "samples": int(g[0]), "compute_seconds": float(g[1])}
                               for r, g in enumerate(gathered)]}
        if tx is not None:
            result["test_accuracy"] = history[-1]["test_accuracy"]
            result["history"] = history
        print(json.dumps(result), flush=True)
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)


def evaluate(model, tx, ty):
    model.eval()
    with torch.no_grad():
        accuracy = float((model(tx).argmax(1) == ty).float().mean())
    model.train()
    return accuracy


def train_epoch(a, ddp, opt, x, y, mine, per_rank):
    """One epoch of this rank's sample indices `mine`; returns (compute seconds, samples)."""
    steps = (len(mine) + per_rank - 1) // per_rank
    compute = 0.0
    samples = 0
    ddp.train()
    for s in range(steps):
        step = mine[s * per_rank:(s + 1) * per_rank]
        opt.zero_grad()
        micro = [step[m:m + a.micro_batch] for m in range(0, len(step), a.micro_batch)]
        for k, idx in enumerate(micro):
            t0 = time.perf_counter()
            if k + 1 < len(micro):
                # The forward too: DDP decides in forward() whether the next backward all-reduces
                # (before 2026-11-29 only the backward was inside, so every micro-batch
                # all-reduced; found by counting bytes on bench/lan.sh's simulated links).
                with ddp.no_sync():
                    loss = F.cross_entropy(ddp(x[idx]), y[idx], reduction="sum") / a.global_batch
                    loss.backward()
                compute += time.perf_counter() - t0
            else:
                loss = F.cross_entropy(ddp(x[idx]), y[idx], reduction="sum") / a.global_batch
                # The last backward also runs the all-reduce, overlapped with it: counted as
                # compute here, so DDP's per-rank compute seconds are an upper bound.
                loss.backward()
                compute += time.perf_counter() - t0
        samples += len(step)
        opt.step()
    return compute, samples


if __name__ == "__main__":
    main()
