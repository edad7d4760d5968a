#!/usr/bin/env bash
# mpi.sync_overlap: --sync diloco --sync-overlap (DESIGN §4 "Sync overlap"): each round computes
# while the previous round's sync is in flight (on a guess of rank 0's next command) and applies
# that sync's update when it lands, one round late. mlp, rounds of 2 local steps of 128 samples,
# static shares, 2 epochs of 2560 samples (10 rounds each):
#   1. one trainer with --outer-optimizer average: the master it gets back is its own end, so the
#      late update changes nothing and the run is bit-identical to the one without overlap; 18 of
#      its 20 rounds were computed on the guess (not the first of each epoch: no full round
#      follows the epoch's last, so there is nothing to guess);
#   2. two trainers (1:3), Adam inside, Nesterov outside, a step checkpoint every 8 steps: every
#      sample is used exactly once per epoch (the sample logs); each trainer computed 14 rounds
#      on the guess (a checkpoint's command and the epoch's end each start a new chain of rounds:
#      chains of 4, 4, 2, 2, 4, 4 rounds); the run differs from the one without overlap;
#   3. resumed from the mid-epoch checkpoint at step 8, it ends bit-identical to the run that
#      went on: at a checkpoint every trainer takes the master, so the checkpoint is all there is;
#   4. a trainer lost under --on-trainer-loss continue while the others compute on their guess:
#      they go back to the saved start, redo the round from the unchanged master, exit 5, and
#      every sample is still used exactly once per epoch;
#   5. --sync-overlap-steps 1 (the landed sync applied before each round's second local step):
#      rank 0 says so, every sample is used once, and the result differs from both the
#      whole-round overlap of item 2 and no overlap; run again, it is bit-identical (the waits
#      for the landing sync, of whatever length, change nothing);
#   6. --aggregators 2 (the landing comes piece by piece from each shard's owner): one epoch
#      ends bit-identical to the same epoch with one aggregator.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
common=(--data "$train" --model mlp --global-batch 128 --micro-batch 32 --threads 1
  --local-steps 2 --rebalance-every 0 --link-probe-seconds 0 --progress-seconds 1000
  --limit-train-samples 2560 --epochs 2 --sync diloco)
run() { # run NP DIR ARGS...: a 1 + (NP-1) rank job, its log in DIR.log
  local np=$1 dir=$2 rc=0
  shift 2
  mpi "$np" "$HETRAIN" train "${common[@]}" --checkpoint-dir "$dir" --summary-json "$dir.json" \
    "$@" >"$dir.log" 2>&1 || rc=$?
  expect_rc "$rc" 0 "$dir.log"
}

# 1. one trainer, outer average: bit-identical with and without overlap
one=(--outer-optimizer average --optimizer sgd --lr 0.05)
run 2 "$work/one_plain" "${one[@]}"
run 2 "$work/one_overlap" "${one[@]}" --sync-overlap
grep -q -- "--sync-overlap: each round computes while the previous round's sync is in flight" \
  "$work/one_overlap.log" || fail "rank 0 did not say that the sync overlaps ($work/one_overlap.log)"
compare --exact "$(newest "$work/one_plain")" "$(newest "$work/one_overlap")" ||
  fail "one trainer with outer average: overlap changed the result"
summary_check "$work/one_overlap.json" 's["sync_overlap"] and trainer(1)["overlapped_rounds"] == 18' \
  "the trainer did not compute 18 of 20 rounds on its guess"
summary_check "$work/one_plain.json" 'not s["sync_overlap"] and trainer(1)["overlapped_rounds"] == 0' \
  "a run without overlap counted overlapped rounds"
echo "1. one trainer, outer average: bit-identical to no overlap, 18 of 20 rounds overlapped"

# 2. two trainers, 1:3, Adam inside, a step checkpoint every 8 steps
two=(--balance static:1,3 --optimizer adam --lr 1e-3 --checkpoint-every 8 --keep-checkpoints 10)
run 3 "$work/two" "${two[@]}" --sync-overlap --debug-sample-log "$work/samples"
$py "$tools/check_samples.py" "$work/samples" 2560 2 2
summary_check "$work/two.json" 'trainer(1)["overlapped_rounds"] == trainer(2)["overlapped_rounds"] == 14' \
  "each trainer should have computed 14 rounds on its guess"
run 3 "$work/two_plain" "${two[@]}"
if compare --exact --quiet "$(newest "$work/two")" "$(newest "$work/two_plain")" >/dev/null; then
  fail "two trainers: --sync-overlap changed nothing, so it cannot have applied updates late"
fi
echo "2. two trainers: every sample once, 14 rounds each overlapped, differs from no overlap"

# 3. resume from the step-8 checkpoint
mid=$(step_ckpt "$work/two" 8)
[ -f "$mid" ] || fail "no step checkpoint at step 8 in $work/two"
mkdir -p "$work/resumed"
cp "$mid" "$work/resumed/"
run 3 "$work/resumed" "${two[@]}" --sync-overlap --resume auto
compare --exact "$(newest "$work/two")" "$(newest "$work/resumed")" ||
  fail "a run resumed mid-epoch with --sync-overlap differs from the one that went on"
echo "3. resumed from step 8: bit-identical"

# 4. a lost trainer (rank 2 killed in its 3rd round) under --on-trainer-loss continue
rc=0
recovery_mpi 4 "$HETRAIN" train "${common[@]}" --balance static:1,1,1 --straggler-timeout 4 \
  --on-trainer-loss continue --fault-kill-rank 2 --sync-overlap --checkpoint-dir "$work/lost" \
  --debug-sample-log "$work/lost_samples" >"$work/lost.log" 2>&1 || rc=$?
expect_rc "$rc" 5 "$work/lost.log"
grep -q "going on without it" "$work/lost.log" || fail "rank 2 was not dropped (log: $work/lost.log)"
$py "$tools/check_samples.py" "$work/lost_samples" 2560 2 3
echo "4. a lost trainer: dropped, its round redone, every sample once"

# 5. --sync-overlap-steps 1
run 3 "$work/tau" "${two[@]}" --sync-overlap --sync-overlap-steps 1 --debug-sample-log "$work/tau_samples"
grep -q "applied before the next round's local step 2 (--sync-overlap-steps)" "$work/tau.log" ||
  fail "rank 0 did not say where the sync is applied ($work/tau.log)"
$py "$tools/check_samples.py" "$work/tau_samples" 2560 2 2
for other in two two_plain; do
  if compare --exact --quiet "$(newest "$work/tau")" "$(newest "$work/$other")" >/dev/null; then
    fail "--sync-overlap-steps 1 ends where $other does: the step of the landing changed nothing"
  fi
done
run 3 "$work/tau_again" "${two[@]}" --sync-overlap --sync-overlap-steps 1
compare --exact "$(newest "$work/tau")" "$(newest "$work/tau_again")" ||
  fail "--sync-overlap-steps 1 is not repeatable"
echo "5. --sync-overlap-steps 1: every sample once, differs from whole-round and no overlap, repeatable"

# 6. two aggregators: the same epoch as one, bit for bit
shards=(--balance static:1,3 --optimizer adam --lr 1e-3 --epochs 1 --sync-overlap)
run 3 "$work/one_shard" "${shards[@]}"
run 4 "$work/two_shards" "${shards[@]}" --aggregators 2
compare --exact "$(newest "$work/one_shard")" "$(newest "$work/two_shards")" ||
  fail "--sync-overlap with --aggregators 2 differs from one aggregator"
echo "6. two aggregators: bit-identical to one"
