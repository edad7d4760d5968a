#!/usr/bin/env bash
# lan.left_out: a trainer the plan leaves out costs the job nothing (issue 23). 4 simulated hosts,
# one rank each (--map-by node): rank 0 and trainers 1, 2 at 1 Gbit/s, trainer 3 behind 20 Mbit/s,
# whose transfer of the cnn's parameters (1.7 MB a round each way) would take longer than the
# round, so the plan leaves it out. Checked:
#  - the first plan leaves rank 3 out and the log says why;
#  - its link carries almost nothing during training: the bytes that enter host 3 in a run of 24
#    rounds minus those of a run of 4 rounds (startup and the end cancel) stay under two parameter
#    sets (before issue 23 every round sent it the parameters: 20 sets; the link probe's bytes
#    vary by a few hundred KB from run to run, since it grows its transfers until they last
#    50 ms);
#  - what it costs a round: the time a round spends beyond its slowest trainer's compute (sending,
#    waiting, reducing, stepping), median over rounds 2.. of 2 runs each, interleaved, with -np 4
#    and with -np 3 (rank 3 never started), may differ by at most 10% of the -np 3 round. This is
#    the 10% of throughput the issue allows, measured where the left-out trainer could cost
#    anything: the compute part differs between runs with the start-up plan's shares of the two
#    working trainers (9:7 or 8:8 from a noisy probe on this 2-core VM, 12% apart; seen: a
#    samples/s ratio of 0.855 from that alone, with the left-out trainer's bytes at 0.001 sets).
#    The samples/s of both are printed, and must be at least 0.75 of each other (before issue 23:
#    0.256);
#  - the summary says how long it was out (out_rounds = every round, out_seconds > 0) and the
#    epoch table has its out column;
#  - --aggregators 2 (5 hosts, rank 1 a shard server at 1 Gbit/s): the shard server sends the
#    left-out trainer nothing either (same byte check), and the run completes.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model cnn --epochs 1 --optimizer adam --lr 1e-3 --global-batch 512
   --micro-batch 32 --threads 1 --seed 4 --progress-seconds 1000 --link-probe-seconds 1)
short=4
long=24
# run TAG NP ROUNDS ARGS...: one hetrain run across $sim, with the byte counters around it.
run() {
  local tag=$1 np=$2 rounds=$3
  shift 3
  counters "$work/$tag.before.json"
  lan "$np" --map-by node "$HETRAIN" train "${s[@]}" --limit-train-samples $((rounds * 512)) \
    --checkpoint-dir "$work/$tag" --summary-json "$work/$tag.json" --metrics "$work/$tag.jsonl" \
    "$@" >"$work/$tag.log" 2>&1 ||
    { tail -n 30 "$work/$tag.log" >&2; fail "run $tag failed"; }
  counters "$work/$tag.after.json"
}
sim_up 4 1gbit,1gbit,1gbit,20mbit --slots 1
run short4 4 $short
for k in 1 2; do
  run with$k 4 $long
  run without$k 3 $long
done
grep -E "left out|plan:|out of the plan|out rounds" "$work/with1.log" | cut -c1-220 | head -n 12 || true # shown
"$lan_sim" down "$sim" >/dev/null
sim_up 5 1gbit,1gbit,1gbit,1gbit,20mbit --slots 1
run a2short 5 $short --aggregators 2
run a2long 5 $long --aggregators 2
grep -E "left out|plan:" "$work/a2long.log" | cut -c1-220 | head -n 4 || true # shown
$py - "$work" "$short" "$long" "$(param_bytes "$work/with1.json")" <<'PY'
import json, sys
work, short, long, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
failures = []
def host_rx(tag, host):
    before = json.load(open(f"{work}/{tag}.before.json"))["hosts"]
    after = json.load(open(f"{work}/{tag}.after.json"))["hosts"]
    return after[host]["rx_bytes"] - before[host]["rx_bytes"]
def summary(tag):
    return json.load(open(f"{work}/{tag}.json"))
print(f"M = {m} bytes (fp32 parameters)")
for label, host, a, b in (("1 aggregator", 3, "with1", "short4"),
                          ("--aggregators 2", 4, "a2long", "a2short")):
    moved = host_rx(a, host) - host_rx(b, host)
    print(f"{label}: bytes into the left-out trainer's host over {long - short} rounds: {moved} "
          f"({moved / m:.3f} parameter sets)")
    if moved > 2 * m:
        failures.append(f"{label}: {moved} bytes reached the left-out trainer in "
                        f"{long - short} rounds (more than two parameter sets, 2 x {m})")
for tag, rank in (("with1", 3), ("a2long", 4)):
    s = summary(tag)
    if any(f"rank {rank} " in p.split(";")[0] for p in s["plan_history"][:1]):
        failures.append(f"{tag}: rank {rank} is in the first plan: {s['plan_history'][0]}")
    t = {x["rank"]: x for x in s["trainers"]}[rank]
    print(f"{tag}: rank {rank} out_rounds {t['out_rounds']} out_seconds {t['out_seconds']:.2f}")
    if t["out_rounds"] != long or not t["out_seconds"] > 0:
        failures.append(f"{tag}: rank {rank} out_rounds {t['out_rounds']} (expected {long}), "
                        f"out_seconds {t['out_seconds']}")
    if t["samples"] != 0:
        failures.append(f"{tag}: rank {rank} trained {t['samples']} samples while out")
def rounds(tag):  # round records 2.. of both runs (round 1 warms up)
    return [r for k in (1, 2) for line in open(f"{work}/{tag}{k}.jsonl")
            for r in [json.loads(line)] if r.get("type") == "round" and r["round"] >= 2]
def median(values):
    values = sorted(values)
    return values[len(values) // 2]
def overhead(r):  # the round beyond its slowest trainer's compute
    return r["seconds"] - max(t["compute_seconds"] for t in r["trainers"])
figures = {}
for name in ("with", "without"):
    rs = rounds(name)
    figures[name] = (median([r["seconds"] for r in rs]), median([overhead(r) for r in rs]))
    print(f"{name}: samples/s of the two runs " +
          ", ".join(f"{summary(f'{name}{k}')['samples_per_sec']:.0f}" for k in (1, 2)) +
          f"; median round {figures[name][0]:.3f} s, of it beyond the slowest compute "
          f"{figures[name][1]:.3f} s")
extra = figures["with"][1] - figures["without"][1]
print(f"the left-out trainer's cost: {extra * 1e3:+.1f} ms a round beyond compute, "
      f"{100 * extra / figures['without'][0]:+.1f}% of the -np 3 round")
if extra > 0.1 * figures["without"][0]:
    failures.append(f"the left-out trainer adds {extra:.3f} s a round beyond compute, more than "
                    f"10% of the round without it ({figures['without'][0]:.3f} s)")
ratio = figures["without"][0] / figures["with"][0]
if ratio < 0.75:
    failures.append(f"samples/s from the median round {ratio:.3f} of the job without it")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY
# The log: the column is what the user sees of the out rounds (the summary's are checked above).
grep -q "out rounds/s" "$work/with1.log" || fail "the epoch table has no out column"
