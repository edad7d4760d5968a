"""Checks the files of a run with --metrics, --timeline and --prometheus (ctest mpi.observe).

usage: check_observability.py METRICS.jsonl TIMELINE.json PROM SAMPLES EPOCHS RANKS

- metrics: every line parses; a distributed run has one "links" record; per epoch the round records' samples and the epoch record's
  samples both add up to the dataset size; every round names its trainers' compute and wait
  seconds and the aggregator's receive/reduce/step/broadcast seconds
- timeline: JSON with one named process row per rank and spans of each rank that never overlap
  within a row
- prometheus: the text exposition format (HELP/TYPE before samples, valid names and labels,
  numeric values, counters named _total), and the expected metric families
"""
import collections
import json
import math
import re
import sys

metrics_path, timeline_path, prom_path = sys.argv[1:4]
samples, epochs, ranks = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

# --- metrics ---
rounds, epoch_records, link_records, plan_records = [], [], [], []
for number, line in enumerate(open(metrics_path), 1):
    record = json.loads(line)
    {"round": rounds, "epoch": epoch_records, "links": link_records,
     "plan": plan_records}[record["type"]].append(record)
# Every plan a distributed run adopts is a record with its reason, the start-up plan first.
assert ranks == 1 or (plan_records and plan_records[0]["reason"] == "start-up"), plan_records
for p in plan_records:
    assert p["reason"] and sum(p["shares"].values()) > 0, p
# The link probe's record comes first, once, in a distributed run (its list is empty with
# --link-probe-seconds 0).
assert ranks == 1 or len(link_records) == 1, link_records
for link in (link_records[0]["links"] if link_records else []):
    assert link["up_mb_per_s"] > 0 and link["down_mb_per_s"] > 0, link
per_epoch = collections.Counter()
for r in rounds:
    per_epoch[r["epoch"]] += r["samples"]
    assert sum(t["samples"] for t in r["trainers"]) == r["samples"], r
    for t in r["trainers"]:
        assert t["compute_seconds"] >= 0 and t["wait_seconds"] >= 0, t
    for key in ("receive_seconds", "reduce_seconds", "step_seconds", "broadcast_seconds"):
        assert r["aggregator"][key] >= 0, r["aggregator"]
    assert r["bytes"] > 0 or ranks == 1, r
    assert math.isfinite(r["loss"]) and r["lr"] > 0, r
assert dict(per_epoch) == {e: samples for e in range(1, epochs + 1)}, per_epoch
assert [e["epoch"] for e in epoch_records] == list(range(1, epochs + 1)), epoch_records
assert all(e["samples"] == samples for e in epoch_records), epoch_records
print(f"metrics: {len(rounds)} rounds, {len(epoch_records)} epochs, {samples} samples per epoch")

# --- timeline ---
trace = json.load(open(timeline_path))
events = trace["traceEvents"]
names = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
assert sorted(names) == list(range(ranks)), names
spans = collections.defaultdict(list)
for e in events:
    if e["ph"] == "X":
        spans[e["pid"]].append((e["ts"], e["ts"] + e["dur"], e["name"]))
assert sorted(spans) == list(range(ranks)), f"rows with spans: {sorted(spans)}"
for pid, row in spans.items():
    row.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(row, row[1:]):
        # 1 microsecond of slack: the ends are rounded through doubles of wall-clock microseconds
        assert b0 >= a1 - 1.0, f"rank {pid}: {an} [{a0}, {a1}) overlaps {bn} [{b0}, {b1})"
kinds = {pid: sorted({name for _, _, name in row}) for pid, row in spans.items()}
assert {"receive", "step", "broadcast", "checkpoint"} <= set(kinds[0]), kinds[0]
for pid in range(1, ranks):
    assert {"compute", "send", "wait"} <= set(kinds[pid]), kinds[pid]
print("timeline:", {names[p]: len(spans[p]) for p in sorted(spans)})

# --- prometheus ---
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label_re = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
sample_re = re.compile(rf"^({name_re})(\{{{label_re}(?:,{label_re})*\}})? (\S+)$")
typed, helped, families = {}, set(), set()
for line in open(prom_path):
    line = line.rstrip("\n")
    if line.startswith("# HELP "):
        helped.add(line.split()[2])
    elif line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        assert kind in ("counter", "gauge"), line
        assert name not in typed, f"TYPE given twice for {name}"
        typed[name] = kind
    else:
        m = sample_re.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        assert name in typed and name in helped, f"{name}: sample before its HELP/TYPE"
        float(m.group(3))
        assert name.startswith("hetrain_"), name
        assert (typed[name] == "counter") == name.endswith("_total"), name
        families.add(name)
expected = {"hetrain_samples_per_second", "hetrain_samples_total", "hetrain_rounds_total",
            "hetrain_epoch", "hetrain_loss", "hetrain_test_accuracy_ratio",
            "hetrain_trainer_share_micro_batches", "hetrain_trainer_samples_per_second",
            "hetrain_trainer_samples_total"}
assert expected <= families, expected - families
print(f"prometheus: {len(families)} families in the exposition format")
