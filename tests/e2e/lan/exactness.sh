#!/usr/bin/env bash
# lan.exactness: hetrain across 3 simulated hosts (1 Gbit/s links) ends where the one-process run
# ends. Ranks are placed --map-by node (round robin over the hosts), so:
#  - A = 1, 4 ranks: rank 0 on host 0, trainers 1, 2, 3 on hosts 1, 2, 0;
#  - A = 3, 6 ranks: aggregators 0, 1, 2 on hosts 0, 1, 2 and trainers 3, 4, 5 on hosts 0, 1, 2
#    (the co-located layout: every host holds one shard server and one trainer), asked for with
#    --aggregators-per-host, which finds the 3 hosts itself; the same option with 2 ranks per
#    host in a row (--map-by ppr:2:node: ranks 0 and 1 on host 0) is refused, exit 2.
# Both with static shares 1,2,5 (an uneven split) against one process at step 20 (4976 samples =
# 19 rounds of 256 and one of 112; tolerance $early_rtol, see tests/e2e/mpi/common.sh), and the
# A = 3 run against the A = 1 run bit for bit (a shard sums the trainers' pieces in A = 1's order).
# Also checked: each rank reports the host name of its simulated host (the agent's UTS namespace),
# so the checkpoint's reports name 3 distinct hosts.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 32 --limit-train-samples 4976 --threads 1 --seed 7 --progress-seconds 1000
   --balance static:1,2,5)
final=ckpt-s00000020-epoch.h5
sim_up 3 1gbit
"$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" | tail -n 1
lan 4 --map-by node "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/a1" >"$work/a1.log" 2>&1 ||
  { tail -n 30 "$work/a1.log" >&2; fail "A = 1 across 3 hosts failed"; }
grep -E "plan:|finished" "$work/a1.log" || true # shown
lan 6 --map-by node "$HETRAIN" train "${s[@]}" --aggregators-per-host --checkpoint-dir "$work/a3" \
  --summary-json "$work/a3.json" >"$work/a3.log" 2>&1 ||
  { tail -n 30 "$work/a3.log" >&2; fail "A = 3 across 3 hosts failed"; }
grep -E "aggregators|finished" "$work/a3.log" || true # shown, not checked
summary_check "$work/a3.json" 's["aggregators"] == 3' "--aggregators-per-host did not find the 3 hosts"
rc=0
lan 6 --map-by ppr:2:node "$HETRAIN" train "${s[@]}" --aggregators-per-host \
  --checkpoint-dir "$work/bad" >"$work/bad.log" 2>&1 || rc=$?
# The log: bad input is refused with a message naming the ranks (what the user sees).
grep "share a host" "$work/bad.log" | head -n 1 || true
[ "$rc" -eq 2 ] && grep -q "ranks 0 and 1 share a host" "$work/bad.log" ||
  { tail -n 20 "$work/bad.log" >&2; fail "ranks 0 and 1 on one host: exit $rc, not refused (2)"; }
[ ! -e "$work/bad" ] || [ -z "$(ls -A "$work/bad")" ] || fail "the refused run wrote files"
for name in one a1 a3; do
  [ -f "$work/$name/$final" ] || fail "$name: no epoch checkpoint at step 20"
done
for name in a1 a3; do
  echo "$name (3 hosts) against one process:"
  compare --quiet "$work/one/$final" "$work/$name/$final" "$early_rtol"
done
echo "A = 3 against A = 1, bit for bit:"
compare --quiet --exact "$work/a1/$final" "$work/a3/$final"
# Every trainer ran on the host --map-by node put it on, under that host's name.
$py - "$work/a1/$final" "$work/a3/$final" "$sim" <<'PY'
import json, sys, h5py
sim = sys.argv[3]
for path, first_trainer in ((sys.argv[1], 1), (sys.argv[2], 3)):
    with h5py.File(path) as f:
        reports = [json.loads(r) for r in f["cluster/reports"][()]]
    hosts = {r["rank"]: r["host"] for r in reports}
    want = {rank: f"{sim}-h{rank % 3}" for rank in range(first_trainer, first_trainer + 3)}
    print(f"trainers' hosts: {hosts}")
    assert hosts == want, f"expected {want}"
PY
