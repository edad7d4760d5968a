#!/usr/bin/env bash
# mpi.elastic_restart: scripts/elastic.sh, the supervised restart (DESIGN §7). The job starts on
# a hostfile of 3 slots (rank 0 + 2 trainers); once round 3 is in the metrics, the file grows to
# 4 slots. The script asks the job to checkpoint and stop (SIGUSR1 to mpirun: exit 4 and
# ckpt-*-signal.h5), starts it again on 4 slots with --resume auto, and the run completes (exit 0)
# with 3 trainers from the signal checkpoint's step. --sync gradient computes the exact gradient
# of every global batch whatever the world size, so the final parameters equal an uninterrupted
# run's to rounding: compared at step 20, before rounding differences grow (see common.sh),
# within $early_rtol. Prints the time from the change to the new job's first round.
# mlp with global batches of 2048 in micro-batches of 1 (about 0.3 s a round on the 2-core VM),
# so that the run outlasts the change.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 2 --optimizer momentum --lr 0.05 --global-batch 2048
   --micro-batch 1 --limit-train-samples 20480 --threads 1 --seed 7 --progress-seconds 1000)
final=ckpt-s00000020-epoch.h5
mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/straight" | tail -n 1
echo "localhost slots=3" >"$work/hosts"
MPIRUN=$MPIEXEC "$repo/scripts/elastic.sh" --poll 0.2 --settle 0 "$work/hosts" --oversubscribe \
  --mca mpi_yield_when_idle 1 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/ck" \
  --metrics "$work/m.jsonl" --summary-json "$work/s.json" >"$work/log" 2>&1 &
job=$!
for _ in $(seq 1 1200); do # the metrics say when round 3 is done (not a check)
  [ "$(rounds_done "$work/m.jsonl")" -ge 3 ] && break
  sleep 0.05
done
[ "$(rounds_done "$work/m.jsonl")" -ge 3 ] || { tail -n 20 "$work/log"; fail "no round 3 within 60 s"; }
echo "localhost slots=4" >"$work/hosts"
changed=$(now)
# The new job's first round: a round record past the signal checkpoint's step (the metrics file
# is rewritten by the new job's rank 0). Not a check: the exit code and the summary below are.
first_round=""
for _ in $(seq 1 1200); do
  ck=$(find "$work/ck" -name 'ckpt-*-signal.h5' | head -n 1)
  if [ -n "$ck" ]; then
    stopped=$(basename "$ck" | sed 's/ckpt-s0*\([0-9][0-9]*\)-.*/\1/')
    if grep '"type":"round"' "$work/m.jsonl" 2>/dev/null |
      $py -c 'import json,sys; sys.exit(0 if any(json.loads(l)["step"] > int(sys.argv[1]) for l in sys.stdin) else 1)' "$stopped"; then
      first_round=$(awk -v a="$(now)" -v b="$changed" 'BEGIN { printf "%.1f", a - b }')
      break
    fi
  fi
  sleep 0.1
done
rc=0
wait "$job" || rc=$?
grep -E "^elastic:|SIGUSR1" "$work/log" | cut -c1-200
expect_rc "$rc" 0 "$work/log"
[ -n "$first_round" ] || fail "the restarted job's first round was not seen"
echo "from the hostfile change to the restarted job's first round: $first_round s"
summary_check "$work/s.json" 's["world_size"] == 4 and len(s["trainers"]) == 3' \
  "the last job ran on the 4 slots"
summary_check "$work/s.json" "s['resumed_step'] == $stopped and 3 <= $stopped < 20" \
  "it resumed from the signal checkpoint"
summary_check "$work/s.json" 's["steps"] == 20' "the run completed"
summary_check "$work/s.json" \
  "[(c['change'], c['round']) for c in s['membership_changes']] == [('restart', $stopped)]" \
  "the summary names the restart on another world size"
echo "restarted on 4 slots after step $stopped; against the uninterrupted run:"
compare --quiet "$work/straight/$final" "$work/ck/$final" "$early_rtol"
