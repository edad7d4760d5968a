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
#  - throughput: the 4-rank job makes at least 90% of the samples/s of the same job with -np 3
#    (rank 3 never started), both measured in this test, 2 runs each, interleaved; samples/s from
#    the median round of both runs (--metrics), since every rank shares this machine's 2 cores and
#    a whole run's samples/s moves with any other load;
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
grep -E "left out|plan:|out of the plan|out rounds" "$work/with1.log" | cut -c1-220 | head -n 12
"$lan_sim" down "$sim" >/dev/null
sim_up 5 1gbit,1gbit,1gbit,1gbit,20mbit --slots 1
run a2short 5 $short --aggregators 2
run a2long 5 $long --aggregators 2
grep -E "left out|plan:" "$work/a2long.log" | cut -c1-220 | head -n 4
$py - "$work" "$short" "$long" "$(param_bytes "$work/with1.log")" <<'PY'
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
def median_round(tag):  # seconds of a round, rounds 2.. of both runs (round 1 warms up)
    rounds = sorted(r["seconds"] for k in (1, 2) for line in open(f"{work}/{tag}{k}.jsonl")
                    for r in [json.loads(line)] if r.get("type") == "round" and r["round"] >= 2)
    return rounds[len(rounds) // 2]
for name in ("with", "without"):
    print(f"{name}: samples/s of the two runs " +
          ", ".join(f"{summary(f'{name}{k}')['samples_per_sec']:.0f}" for k in (1, 2)) +
          f"; median round {median_round(name):.3f} s")
# The median round of 2 x 23 rounds: a compute burst of another process on these 2 cores moves a
# whole run's samples/s by 30% (seen), the median round much less.
with_rate, without_rate = 512 / median_round("with"), 512 / median_round("without")
print(f"samples/s from the median round: -np 4 (rank 3 left out) {with_rate:.0f}, -np 3 "
      f"{without_rate:.0f}, ratio {with_rate / without_rate:.3f}")
if with_rate < 0.9 * without_rate:
    failures.append(f"the left-out trainer costs {100 * (1 - with_rate / without_rate):.0f}% of the "
                    "throughput (at most 10%)")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY
grep -q "out rounds/s" "$work/with1.log" || fail "the epoch table has no out column"
