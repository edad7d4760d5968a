#!/usr/bin/env bash
# lan.planned_leave: a planned leave (DESIGN §7) across 3 simulated hosts (1 Gbit/s links),
# 4 ranks --map-by node: rank 0 on host 0, trainers 1, 2, 3 on hosts 1, 2, 0. Once round 2 is in
# the metrics, the trainer on host 2 (rank 2) alone gets SIGTERM: it leaves after its round, its
# process is gone while the others train on, the job exits 0, the summary names the leave, every
# sample is used once per epoch, and the run ends where one process does (--sync gradient: the
# exact gradient whatever the shares), at step 20 within $early_rtol (see tests/e2e/mpi/common.sh).
# mlp in micro-batches of 1, so that the 20 rounds outlast the leave.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 2 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 1 --limit-train-samples 2480 --threads 1 --seed 7 --progress-seconds 1000)
final=ckpt-s00000020-epoch.h5
"$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" | tail -n 1
sim_up 3 1gbit
lan 4 --map-by node "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/ck" \
  --metrics "$work/m.jsonl" --debug-sample-log "$work/samples" --summary-json "$work/s.json" \
  >"$work/log" 2>&1 &
job=$!
leaver=""
for _ in $(seq 1 1200); do # the metrics say when round 2 is done (not a check)
  if [ "$(rounds_done "$work/m.jsonl")" -ge 2 ]; then
    leaver=$(rank_pid 2)
    break
  fi
  sleep 0.05
done
[ -n "$leaver" ] || { tail -n 20 "$work/log"; fail "round 2 or rank 2's process not found in 60 s"; }
kill -TERM "$leaver"
while kill -0 "$leaver" 2>/dev/null; do sleep 0.05; done
rounds_when_gone=$(rounds_done "$work/m.jsonl")
rc=0
wait "$job" || rc=$?
grep -E "leaves the job|leaving the job" "$work/log" | cut -c1-200
expect_rc "$rc" 0 "$work/log"
echo "rank 2 (host 2) gone after round $rounds_when_gone of 20"
[ "$rounds_when_gone" -lt 20 ] || fail "rank 2's process lasted until the job's end"
$py "$tools/check_samples.py" "$work/samples" 2480 2 3
summary_check "$work/s.json" \
  '[(c["rank"], c["change"]) for c in s["membership_changes"]] == [(2, "left")] and s["steps"] == 20' \
  "the summary names rank 2's leave and the run completed"
compare --quiet "$work/one/$final" "$work/ck/$final" "$early_rtol"
