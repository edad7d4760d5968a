#!/usr/bin/env bash
# lan.busiest_link: bytes per round over the busiest host link, one aggregator against co-located
# shard servers, on 3 and 4 simulated hosts (1 Gbit/s), next to a ring all-reduce's bound
# 2(n-1)/n x M (M = fp32 parameter bytes, from the summary's "parameters").
#  - one aggregator: --aggregators 1, n + 1 ranks --map-by node: rank 0 on host 0, one trainer per
#    host. Host 0 takes in n-1 gradients and sends n-1 parameter sets: about n/2 x the bound.
#    Printed, not asserted against the bound.
#  - co-located: --aggregators n, 2n ranks --map-by node: aggregator j and trainer n+j on host j.
#    Each host sends (n-1)/n of its trainer's gradient and (n-1)/n of the parameters (its shard to
#    the other trainers), the ring's 2(n-1)/n x M. Asserted <= 1.25 x the bound.
# Method: the sim's per-host veth counters (lan-sim.sh counters) before and after a run of 5 and a
# run of 25 rounds of 256 samples. Per host and direction, (bytes of the long run - bytes of the
# short run) / 20 is the bytes a round moves: startup (MPI wire-up, the link probe, the initial
# parameters) and the end (the final checkpoint's gather) are the same in both runs and cancel.
# The busiest link is the largest of these over hosts and directions. Counters include the
# Ethernet/IP/TCP headers and hetrain's small per-round messages (commands, statistics): they are
# part of what a link carries. --balance equal keeps every trainer working (a plan may otherwise
# leave one out, which would change the bytes). --link-probe-seconds 0: the probe's transfers grow
# until one lasts 50 ms, so its bytes differ from run to run (co-located, 12 pairs at 1 Gbit/s:
# 1.8-2.1 x the bound a round once) and would not cancel.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 32 --threads 1 --seed 7 --progress-seconds 1000 --balance equal
   --link-probe-seconds 0)
short=5
long=25
# run_counted TAG NP ARGS...: one hetrain run across $sim, with counters before and after.
run_counted() {
  local tag=$1 np=$2
  shift 2
  counters "$work/$tag.before.json"
  lan "$np" --map-by node "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/$tag" \
    --summary-json "$work/$tag.json" "$@" >"$work/$tag.log" 2>&1 || { tail -n 30 "$work/$tag.log" >&2; fail "run $tag failed"; }
  counters "$work/$tag.after.json"
}
for n in 3 4; do
  sim_up "$n" 1gbit
  for layout in single colocated; do
    if [ "$layout" = single ]; then np=$((n + 1)) a=1; else np=$((2 * n)) a=$n; fi
    for rounds in $short $long; do
      run_counted "n$n-$layout-$rounds" "$np" --aggregators "$a" \
        --limit-train-samples $((rounds * 256))
    done
  done
  "$lan_sim" down "$sim" >/dev/null
done
$py - "$work" "$short" "$long" "$(param_bytes "$work/n3-single-$short.json")" <<'PY'
import json, sys
work, short, long, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def moved(tag):
    before = json.load(open(f"{work}/{tag}.before.json"))["hosts"]
    after = json.load(open(f"{work}/{tag}.after.json"))["hosts"]
    return {(b["host"], d): a[d] - b[d] for b, a in zip(before, after) for d in ("tx_bytes", "rx_bytes")}
print(f"M = {m} bytes (fp32 parameters); bytes per round over the busiest host link "
      f"({long} - {short} rounds):")
print(f"{'hosts':>5} {'layout':>10} {'measured':>10} {'ring bound':>10} {'ratio':>6}  busiest")
failures = []
for n in (3, 4):
    bound = 2 * (n - 1) / n * m
    measured = {}
    for layout in ("single", "colocated"):
        a, b = moved(f"n{n}-{layout}-{long}"), moved(f"n{n}-{layout}-{short}")
        per_round = {k: (a[k] - b[k]) / (long - short) for k in a}
        busiest = max(per_round, key=per_round.get)
        measured[layout] = per_round[busiest]
        print(f"{n:>5} {layout:>10} {per_round[busiest]:>10.0f} {bound:>10.0f} "
              f"{per_round[busiest] / bound:>6.2f}  host {busiest[0]} {busiest[1][:2]}")
        if per_round[busiest] < 0.5 * bound:
            failures.append(f"{n} hosts {layout}: {per_round[busiest]:.0f} bytes a round is less "
                            "than half the bound: the runs did not move the gradients as expected")
    if measured["colocated"] > 1.25 * bound:
        failures.append(f"{n} hosts co-located: {measured['colocated']:.0f} > 1.25 x {bound:.0f}")
    if measured["colocated"] >= measured["single"]:
        failures.append(f"{n} hosts: co-located ({measured['colocated']:.0f}) not below one "
                        f"aggregator ({measured['single']:.0f})")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY
