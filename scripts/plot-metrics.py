#!/usr/bin/python3
"""Plots a hetrain --metrics file (JSON lines; schema in README "Metrics").

usage: scripts/plot-metrics.py METRICS.jsonl --out DIR

Writes into DIR:
  throughput.png   samples/s of every round over the run's time
  epochs.png       train loss and test accuracy per epoch
  shares.png       each trainer's micro-batches per round over time (re-planning made visible)
  rounds.png       per round, a stacked bar per trainer: compute, wait, and the aggregator's
                   communication (receive + broadcast) and work (reduce + step)
Prints the paths it wrote. Exit 2 on a missing or malformed metrics file.
Uses Debian's python3-matplotlib (scripts/install-deps.sh installs it).
"""
import argparse
import json
import os
import re
import sys


def load(path):
    rounds, epochs, plans = [], [], []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                kind = record.get("type")
                if kind == "round":
                    rounds.append(record)
                elif kind == "epoch":
                    epochs.append(record)
                elif kind == "links":
                    continue  # the link probe's figures: nothing to plot over time
                elif kind == "plan":
                    plans.append(record)  # every plan adopted, with its reason
                else:
                    raise ValueError(f"line {number}: unknown record type {kind!r}")
    except (OSError, ValueError) as e:
        sys.exit(f"plot-metrics: {path}: {e}")
    if not rounds:
        sys.exit(f"plot-metrics: {path}: no round records")
    return rounds, epochs, plans


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("metrics")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rounds, epochs, plans = load(args.metrics)
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot-metrics: needs python3-matplotlib (scripts/install-deps.sh)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(args.out, name)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    times = [r["time"] for r in rounds]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(times, [r["samples_per_sec"] for r in rounds], lw=1)
    ax.set(xlabel="time since the first round (s)", ylabel="samples/s", title="Throughput per round")
    save(fig, "throughput.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    if epochs:
        x = [e["epoch"] for e in epochs]
        ax.plot(x, [e["train_loss"] for e in epochs], "o-", label="train loss")
        ax.set(xlabel="epoch", ylabel="loss", title="Loss and accuracy per epoch")
        if any("test_accuracy" in e for e in epochs):
            ax2 = ax.twinx()
            ax2.plot([e["epoch"] for e in epochs if "test_accuracy" in e],
                     [e["test_accuracy"] for e in epochs if "test_accuracy" in e], "s-",
                     color="tab:green", label="test accuracy")
            ax2.set_ylabel("test accuracy")
            ax2.legend(loc="upper right")
        ax.legend(loc="upper left")
    else:
        ax.text(0.5, 0.5, "no completed epoch", ha="center", transform=ax.transAxes)
    save(fig, "epochs.png")

    ranks = sorted({int(rank) for r in rounds for rank in r["shares"]})
    fig, ax = plt.subplots(figsize=(8, 4))
    for rank in ranks:
        ax.step(times, [r["shares"].get(str(rank), 0) for r in rounds], where="post",
                label=f"rank {rank}")
    # Every plan change, with its reason (the start-up plan is where the lines begin).
    for k, p in enumerate(plans[1:], 1):
        ax.axvline(p["time"], color="grey", lw=0.8, ls="--")
        gain = re.search(r"(\d+)% less", p["reason"])
        lost = re.search(r"without the lost rank [\d,]+", p["reason"])
        short = p["reason"].split(" (")[0] + (f", {gain.group(1)}% faster" if gain else "") + \
            (f", {lost.group(0)}" if lost else "")
        ax.annotate(f"{k}: {short}", (p["time"], 1), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color="grey")
    ax.set(xlabel="time since the first round (s)", ylabel="micro-batches per round",
           title=f"Each trainer's share ({max(0, len(plans) - 1)} re-plans)")
    ax.legend()
    save(fig, "shares.png")

    # At most 60 rounds, evenly spaced, so the bars stay readable on long runs.
    shown = rounds[:: max(1, len(rounds) // 60)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(1, len(ranks))
    for k, rank in enumerate(ranks):
        xs, compute, wait = [], [], []
        for i, r in enumerate(shown):
            t = next((t for t in r["trainers"] if t["rank"] == rank), None)
            if t is None:
                continue
            xs.append(i + k * width)
            compute.append(t["compute_seconds"])
            wait.append(t["wait_seconds"])
        ax.bar(xs, compute, width, label=f"rank {rank} compute")
        ax.bar(xs, wait, width, bottom=compute, alpha=0.5, label=f"rank {rank} wait")
    agg = [r["aggregator"] for r in shown]
    ax.plot(range(len(shown)), [a["receive_seconds"] + a["broadcast_seconds"] for a in agg], "k.",
            label="rank 0 communication (receive + broadcast)")
    ax.plot(range(len(shown)), [a["reduce_seconds"] + a["step_seconds"] for a in agg], "rx",
            label="rank 0 reduce + step")
    ax.set(xlabel="round (sampled)", ylabel="seconds", title="Where each round's time goes")
    ax.legend(fontsize="small", ncol=2)
    save(fig, "rounds.png")

    for path in written:
        print(path)


if __name__ == "__main__":
    main()
