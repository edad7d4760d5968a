#!/usr/bin/env bash
# lan.sync_auto: --sync auto decides from the measured links (DESIGN §5 "Choosing the sync mode"),
# on 3 simulated hosts: rank 0 on host 0, one trainer on each of hosts 1 and 2 (--map-by node),
# the cnn (1.7 MB of parameters), 4 rounds of 256 samples.
#  - every host at 100 Mbit/s: each exact round moves both trainers' gradients into rank 0 and
#    the parameters back out through rank 0's link, full duplex: 2 x 1.7 MB each way, about 0.28 s
#    at 11.96 MB/s of TCP payload, twice the round's compute on this machine: rank 0 chooses
#    diloco, with a period of L = ceil(communication / (0.25 x compute)) local steps, and says so
#    with the figures. The communication it names must be what the link explains, within 30%
#    (the probe's rates are measured; measured 0.282 s against 0.284 s);
#  - every host at 1 Gbit/s and --auto-comm-fraction 2 (communication may take twice the
#    compute): the same job stays exact (gradient), the link being 10x faster.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
job() { # job NAME ARGS...: the run on the current sim; its log and summary in $work/NAME.*
  local name=$1
  shift
  lan 3 --map-by node "$HETRAIN" train --data "$train" --model cnn --epochs 1 --global-batch 256 \
    --micro-batch 32 --limit-train-samples 1024 --threads 1 --seed 7 --progress-seconds 1000 \
    --checkpoint-dir "$work/$name" --summary-json "$work/$name.json" --sync auto "$@" \
    >"$work/$name.log" 2>&1 || { tail -n 30 "$work/$name.log" >&2; fail "$name: the run failed"; }
  grep -E "sync auto" "$work/$name.log" | cut -c1-220
}
sim_up 3 100mbit,100mbit,100mbit
job slow
"$lan_sim" down "$sim" >/dev/null # the second sim replaces it
sim_up 3 1gbit,1gbit,1gbit
job fast --auto-comm-fraction 2
$py - "$work/slow.json" "$work/fast.json" <<'PY'
import json, math, re, sys
slow, fast = (json.load(open(p)) for p in sys.argv[1:])
m = re.search(r"moves ([0-9.e+-]+) s on the links against ([0-9.e+-]+) s of compute",
              slow["sync_choice"])
assert m, slow["sync_choice"]
comm, compute = float(m.group(1)), float(m.group(2))
expected = 2 * 1.7e6 / (100e6 / 8 * 1448 / 1514)
print(f"100 Mbit/s: {slow['sync']}, {slow['local_steps']} local steps; communication {comm:.3f} s "
      f"(the link explains {expected:.3f} s), compute {compute:.4f} s")
assert slow["sync"] == "diloco", slow["sync_choice"]
assert expected / 1.3 <= comm <= expected * 1.3, "the estimate is not what the link explains"
want = min(max(math.ceil(comm / (0.25 * compute)), 2), 1000)
assert abs(slow["local_steps"] - want) <= 1, (slow["local_steps"], want)  # printed figures round
print(f"1 Gbit/s with --auto-comm-fraction 2: {fast['sync']} ({fast['sync_choice'][:90]}...)")
assert fast["sync"] == "gradient", fast["sync_choice"]
PY
