#!/usr/bin/env bash
# lan.links: the link probe's figures and a plan that counts the network, on 3 simulated hosts:
# hosts 0 and 1 at 1 Gbit/s, host 2 at 50 Mbit/s. 4 ranks --map-by node: rank 0 and trainer 3 on
# host 0 (the usual workstation layout: the coordinator shares a machine with a trainer, which
# also gives a same-host pair to check), trainer 1 on host 1, trainer 2 on host 2. Checked:
#  - --summary-json's "links" has one entry per (trainer, aggregator) pair; (3, 0) is same_host,
#    the others are not;
#  - every measured rate (up and down) of an off-host pair is within 20% of what the slower end's
#    link carries as TCP payload: tbf shapes whole Ethernet frames, of which TCP carries
#    1448 of 1514 bytes, so 1 Gbit/s = 125 MB/s of frames = 119.6 MB/s of payload, 50 Mbit/s =
#    5.98 MB/s (an MPI ping-pong of 16 MiB messages measured 112.9 MB/s through 1 Gbit/s, DESIGN
#    §6 "the simulated LAN"). Compute-bound noise (every rank shares this machine's CPUs)
#    shows as a low rate; run it on a quiet machine;
#  - the trainer behind 50 Mbit/s (rank 2) gets a smaller share in the first plan
#    (plan_history[0]) than each other trainer, or is left out of it and the plan's notes
#    (plan_notes[0]) say so naming it ("rank 2 ... left out ...").
# mlp, benchmark shares (the default balance), 8 rounds of 256 samples.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
sim_up 3 1gbit,1gbit,50mbit
lan 4 --map-by node "$HETRAIN" train --data "$train" --model mlp --epochs 1 --optimizer momentum \
  --lr 0.05 --global-batch 256 --micro-batch 32 --limit-train-samples 2048 --threads 1 --seed 7 \
  --progress-seconds 1000 --checkpoint-dir "$work/ckpt" --summary-json "$work/summary.json" \
  >"$work/run.log" 2>&1 || { tail -n 30 "$work/run.log" >&2; fail "the run failed"; }
grep -E "plan:|left out|trainer +host|MB/s" "$work/run.log" | cut -c1-200 | head -n 20 || true
$py - "$work/summary.json" <<'PY'
import json, re, sys
summary = json.load(open(sys.argv[1]))
failures = []
payload = 1448 / 1514  # TCP payload per Ethernet frame (MSS 1448 with timestamps, MTU 1500)
rate = {0: 1e9, 1: 1e9, 2: 50e6}  # bit/s of each host's link
host = {0: 0, 1: 1, 2: 2, 3: 0}  # --map-by node over 3 hosts
links = summary.get("links")
if links is None:
    sys.exit("FAIL: the summary has no 'links' (the link probe is not built?)")
pairs = {(l["trainer_rank"], l["aggregator_rank"]): l for l in links}
if sorted(pairs) != [(1, 0), (2, 0), (3, 0)] or len(links) != 3:
    failures.append(f"links: pairs {sorted(pairs)} ({len(links)} entries), expected (1,0) (2,0) (3,0)")
print(f"{'pair':>7} {'same host':>9} {'latency ms':>10} {'up MB/s':>8} {'down MB/s':>9} "
      f"{'expected':>8}")
for (t, a), l in sorted(pairs.items()):
    same = host[t] == host[a]
    expected = min(rate[host[t]], rate[host[a]]) / 8 / 1e6 * payload
    print(f"{t:>3}->{a:<3} {str(l['same_host']):>9} {l['latency_ms']:>10.3f} "
          f"{l['up_mb_per_s']:>8.1f} {l['down_mb_per_s']:>9.1f} "
          f"{'-' if same else f'{expected:.1f}':>8}")
    if l["same_host"] != same:
        failures.append(f"pair {t}->{a}: same_host {l['same_host']}, expected {same}")
    if same:
        continue
    for key in ("up_mb_per_s", "down_mb_per_s"):
        if not 0.8 * expected <= l[key] <= 1.2 * expected:
            failures.append(f"pair {t}->{a}: {key} {l[key]:.2f} not within 20% of {expected:.2f}")
plan = summary["plan_history"][0]
shares = {int(r): int(k) for r, k in re.findall(r"rank (\d+) \([^)]*\) (\d+) x \d+", plan)}
print(f"first plan: {plan}")
if 2 in shares:
    others = [k for r, k in shares.items() if r != 2]
    if not others or shares[2] >= min(others):
        failures.append(f"the 50 Mbit/s trainer (rank 2) has share {shares[2]}, others {others}")
else:
    named = [n for n in summary["plan_notes"][0] if "left out" in n and re.search(r"\brank 2\b", n)]
    if not named:
        failures.append("rank 2 is not in the first plan, but no plan note says it was left out")
    else:
        print("left out:", named[0])
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY
