#!/usr/bin/env bash
# mpi.planned_leave: a planned leave (DESIGN §7 "Planned leave") under plain mpirun. 3 trainers;
# once round 2 is in the metrics, trainer rank 2 alone gets SIGTERM. Rank 0 takes its round, tells
# it to stop, and goes on with the other two on a new plan: nothing redone (every sample record
# has attempt 0), no checkpoint written, exit code 0 for the job (so rank 2 exited 0 as well:
# mpirun returns the first non-zero exit code of any rank). Rank 2's process is gone long before
# the job ends. Every sample is used once per epoch (sample logs), the summary names the change
# (membership_changes, trainers[].left, the plan history), and the run ends where an
# uninterrupted run does: --sync gradient computes the global batch's exact gradient whatever the
# shares, so only the summation order differs; compared at step 20 (2 epochs of 2480 samples),
# before rounding differences grow (see common.sh), within $early_rtol (measured 2026-12 on the
# 2-core VM: 1.1e-7). Micro-batches of 1 make a round take about 0.03 s there, so the 20 rounds
# outlast the leave.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 2 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 1 --limit-train-samples 2480 --threads 1 --seed 7 --progress-seconds 1000)
final=ckpt-s00000020-epoch.h5
mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/straight" | tail -n 1
mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/ck" --metrics "$work/m.jsonl" \
  --debug-sample-log "$work/samples" --summary-json "$work/s.json" >"$work/log" 2>&1 &
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
sent=$(now)
while kill -0 "$leaver" 2>/dev/null; do sleep 0.05; done
rounds_when_gone=$(rounds_done "$work/m.jsonl")
left_after=$(awk -v a="$(now)" -v b="$sent" 'BEGIN { printf "%.1f", a - b }')
rc=0
wait "$job" || rc=$?
ended_after=$(awk -v a="$(now)" -v b="$sent" 'BEGIN { printf "%.1f", a - b }')
grep -E "leaves the job|leaving the job|re-plan" "$work/log" | cut -c1-200
expect_rc "$rc" 0 "$work/log"
echo "rank 2 gone ${left_after} s after its SIGTERM, after round $rounds_when_gone;" \
  "the job ended after ${ended_after} s"
# It left while the others trained on, not at the job's end (MPI_Finalize without the closing
# fence, DESIGN §7): at most the 20 rounds of the run were done when its process was gone.
[ "$rounds_when_gone" -lt 20 ] || fail "rank 2's process lasted until the job's end"
$py "$tools/check_samples.py" "$work/samples" 2480 2 3
[ -z "$(find "$work/ck" -name 'ckpt-*-signal.h5')" ] || fail "a planned leave wrote a checkpoint"
awk '$3 != 0 { bad = 1 } END { exit bad }' "$work"/samples.rank* || fail "a round was redone"
summary_check "$work/s.json" \
  '[(c["rank"], c["change"], c["reason"], c["cost"]) for c in s["membership_changes"]] == [(2, "left", "SIGTERM", "nothing redone")]' \
  "the summary names rank 2's leave"
summary_check "$work/s.json" \
  '[t["rank"] for t in s["trainers"] if t["left"]] == [2] and not any(t["lost"] for t in s["trainers"])' \
  "rank 2 is marked left, nobody lost"
summary_check "$work/s.json" 'any("rank 2 left: SIGTERM" in p for p in s["plan_history"])' \
  "the plan history gives the re-plan's reason"
summary_check "$work/s.json" 's["steps"] == 20 and len(s["history"]) == 2' \
  "the job trained to its end"
# rank 2 worked until it left and never after: its last sample record is from the leave's round
round=$(summary_get "$work/s.json" 's["membership_changes"][0]["round"]')
last=$(awk '{ print $2 + 1 }' "$work/samples.rank2" | sort -n | tail -n 1)
[ "$last" -eq "$round" ] || fail "rank 2's last round is $last, it left after round $round"
[ "$round" -lt 20 ] || fail "the leave came only after the last round ($round)"
echo "rank 2 left after round $round of 20; against the uninterrupted run:"
compare --quiet "$work/straight/$final" "$work/ck/$final" "$early_rtol"
