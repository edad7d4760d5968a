#!/usr/bin/env bash
# lan.host_upload: one upload per machine (--host-reduce). 4 simulated hosts at 1 Gbit/s, the
# hostfile's slots 1,2,2,2 and --map-by slot: rank 0 alone on host 0 (so every trainer host is
# alike and its outgoing bytes are its uploads: no aggregator shares it), trainers 1-2 on host 1,
# 3-4 on host 2, 5-6 on host 3, static shares 1,2,1,2,1,1 (uneven, also within a host).
# Checked:
#  - --host-reduce auto: bytes leaving each trainer host per round <= 1.15 x M (one gradient, M =
#    fp32 parameter bytes, plus the small per-round messages and headers), and >= 0.85 x M;
#  - --host-reduce off: >= 1.8 x M (two uploads), which shows that the counting sees uploads;
#  - the auto run against one process at step 20 (4976 samples, tolerance $early_rtol).
# Bytes per round: the sim's veth counters around a run of 20 rounds (4976 samples = 19 of 256 and
# one of 112) and one of 5 (1280 samples); (long - short) / 15 cancels startup and the end. The
# link probe is off: its transfers grow until one lasts 50 ms, so its bytes differ between runs.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 32 --threads 1 --seed 7 --progress-seconds 1000
   --link-probe-seconds 0)
sim_up 4 1gbit --slots 1,2,2,2
"$HETRAIN" train "${s[@]}" --limit-train-samples 4976 --checkpoint-dir "$work/one" \
  --summary-json "$work/one.json" >"$work/one.log" 2>&1
param_bytes "$work/one.json" >"$work/m"
for mode in auto off; do
  for samples in 1280 4976; do
    tag=$mode-$samples
    counters "$work/$tag.before.json"
    lan 7 --map-by slot --bind-to none "$HETRAIN" train "${s[@]}" --host-reduce "$mode" \
      --balance static:1,2,1,2,1,1 --limit-train-samples "$samples" \
      --checkpoint-dir "$work/$tag" >"$work/$tag.log" 2>&1 ||
      { tail -n 30 "$work/$tag.log" >&2; fail "run $tag failed"; }
    counters "$work/$tag.after.json"
    grep -iE "host reduce|finished" "$work/$tag.log" | cut -c1-200 || true # shown
  done
done
echo "--host-reduce auto against one process at step 20:"
compare --quiet "$work/one/ckpt-s00000020-epoch.h5" "$work/auto-4976/ckpt-s00000020-epoch.h5" \
  "$early_rtol"
$py - "$work" "$(cat "$work/m")" "$sim" <<'PY'
import json, sys, h5py
work, m, sim = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with h5py.File(f"{work}/auto-4976/ckpt-s00000020-epoch.h5") as f:
    hosts = {r["rank"]: r["host"] for r in map(json.loads, f["cluster/reports"][()])}
want = {rank: f"{sim}-h{(rank + 1) // 2}" for rank in range(1, 7)}
print(f"trainers' hosts: {hosts}")
assert hosts == want, f"expected {want}"
def left(tag):  # bytes that left each host during the run
    b = json.load(open(f"{work}/{tag}.before.json"))["hosts"]
    a = json.load(open(f"{work}/{tag}.after.json"))["hosts"]
    return [y["tx_bytes"] - x["tx_bytes"] for x, y in zip(b, a)]
failures = []
print(f"M = {m} bytes; bytes leaving each trainer host per round (20 - 5 rounds):")
for mode, low, high in (("auto", 0.85, 1.15), ("off", 1.8, None)):
    per_round = [(l - s) / 15 for l, s in zip(left(f"{mode}-4976"), left(f"{mode}-1280"))]
    trainer_hosts = per_round[1:]
    print(f"  --host-reduce {mode:<4}: " +
          ", ".join(f"host {h + 1} {b:.0f} ({b / m:.2f} M)" for h, b in enumerate(trainer_hosts)))
    for h, b in enumerate(trainer_hosts):
        if b < low * m or (high is not None and b > high * m):
            bounds = f"[{low}, {high}] x M" if high else f">= {low} x M"
            failures.append(f"{mode}: host {h + 1} sent {b:.0f} bytes a round, expected {bounds}")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY
