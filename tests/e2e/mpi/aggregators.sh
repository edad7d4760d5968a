#!/usr/bin/env bash
# mpi.aggregators: sharded aggregation (--aggregators A): ranks 0..A-1 each reduce and step 1/A of
# the flat buffer with its own part of the (Adam) optimizer state. Each shard sums the trainers'
# pieces in the same order as A = 1 does, so with the same trainers and static shares a sharded
# run is the same computation as an A = 1 run: bit-identical parameters and optimizer state
# (compare --exact --optimizer; the checkpoint gathers every shard). Checked:
#  - A = 2 with 2 trainers (3,1) and A = 3 with 3 trainers (1,2,5, and --overlap) against A = 1;
#    and both against the one-process run (another summation order) at the end, step 20 (4976
#    samples = 19 rounds of 256 and one of 112), tolerance $early_rtol (measured 2026-11 on the
#    2-core VM: 2.1e-7 and 2.7e-7, in Adam's exp_avg; 0 against A = 1);
#  - the A = 2 run's step-10 checkpoint resumed with A = 3 (the state scattered again) on the same
#    trainers and shares: bit-identical at the end;
#  - a trainer killed in its 3rd round under --enable-recovery (A = 2): rank 0 gathers the shards of
#    the last complete round, exit 3, and that checkpoint (step 2) equals the A = 1 run's at step 2;
#    the same when the trainer's last gradient reached the shard server only (--fault-half-send-rank),
#    so that the server stepped a round rank 0 never completed and must undo it;
#  - the metrics show each aggregator receiving about 1/A of the gradient bytes;
#  - --sync params and diloco (outer Nesterov, the trainers' own Adam; also with --wire-dtype
#    int8, decoded by each shard) with A = 2 against A = 1, bit-identical, and diloco resumed
#    from a step-8 checkpoint with A = 2;
#  - too few ranks is refused with exit code 2.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer adam --lr 1e-3 --global-batch 256
   --micro-batch 32 --limit-train-samples 4976 --threads 1 --seed 7 --progress-seconds 1000
   --chunk-mb 0.1 --keep-checkpoints 100)
final=ckpt-s00000020-epoch.h5
"$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" >/dev/null
mpi 3 "$HETRAIN" train "${s[@]}" --balance static:3,1 --checkpoint-dir "$work/a1_31" | tail -n 1
mpi 4 "$HETRAIN" train "${s[@]}" --balance static:1,2,5 --checkpoint-every 2 \
  --checkpoint-dir "$work/a1_125" | tail -n 1
mpi 4 "$HETRAIN" train "${s[@]}" --aggregators 2 --balance static:3,1 --checkpoint-every 10 \
  --checkpoint-dir "$work/a2" --metrics "$work/a2.jsonl" | grep -E "aggregators:|finished"
mpi 6 "$HETRAIN" train "${s[@]}" --aggregators 3 --balance static:1,2,5 --overlap \
  --checkpoint-dir "$work/a3" --metrics "$work/a3.jsonl" | grep -E "aggregators:|finished"
echo "A = 2 (3,1) against A = 1 (3,1):"
compare --quiet --exact --optimizer "$work/a1_31/$final" "$work/a2/$final"
echo "A = 3 (1,2,5, --overlap) against A = 1 (1,2,5):"
compare --quiet --exact --optimizer "$work/a1_125/$final" "$work/a3/$final"
for a in a2 a3; do
  echo "$a against one process:"
  compare --quiet --optimizer "$work/one/$final" "$work/$a/$final" "$early_rtol"
done
# Resume the A = 2 run's step-10 checkpoint with A = 3 on the same 2 trainers and shares.
mkdir "$work/resumed"
cp "$(step_ckpt "$work/a2" 10)" "$work/resumed/"
mpi 5 "$HETRAIN" train "${s[@]}" --aggregators 3 --balance static:3,1 --resume auto \
  --checkpoint-dir "$work/resumed" | grep -E "resum|finished"
echo "A = 2 to step 10, then A = 3, against A = 1 (3,1):"
compare --quiet --exact --optimizer "$work/a1_31/$final" "$work/resumed/$final"
# A trainer (world rank 3) killed in its 3rd round under --enable-recovery, A = 2; then the same
# with its 3rd-round gradient reaching the shard server only.
for fault in kill half-send; do
  rc=0
  recovery_mpi 5 "$HETRAIN" train "${s[@]}" --aggregators 2 --balance static:1,2,5 \
    --straggler-timeout 6 "--fault-$fault-rank" 3 --checkpoint-dir "$work/$fault" \
    >"$work/$fault.log" 2>&1 || rc=$?
  grep -E "error: lost|dying|undoing" "$work/$fault.log" | cut -c1-200
  expect_rc "$rc" 3 "$work/$fault.log"
  abort=$(ls "$work/$fault"/ckpt-*-abort.h5)
  [ "$(basename "$abort")" = ckpt-s00000002-abort.h5 ] || fail "$fault: abort checkpoint $abort"
  echo "$fault: abort checkpoint at step 2, against A = 1 (1,2,5) at step 2:"
  compare --quiet --exact --optimizer "$(step_ckpt "$work/a1_125" 2)" "$abort"
done
# The log: the job ended on the lost trainer (exit 3) and wrote no summary; the shard server's
# warning is the only word of its undo (the checkpoint comparison above checks its effect).
grep -q "shard server: undoing the round from step 2" "$work/half-send.log" ||
  { tail -n 30 "$work/half-send.log"; fail "the shard server did not undo its step"; }
# --sync params and diloco over shards: each shard server forms its part of the sample-weighted
# mean of the trainers' uploads (parameters, or pseudo-gradients that its part of the outer
# Nesterov state then steps along) as rank 0 does for A = 1: bit-identical parameters, outer
# state and the trainers' own Adam states. diloco's step-8 checkpoint (A = 2), resumed with A = 2
# (the outer state scattered to the server again), ends bit-identical too.
for variant in params diloco "diloco --wire-dtype int8"; do
  mode=${variant// /_}
  # shellcheck disable=SC2206 # the variant's words are flags
  l=(--sync $variant --local-steps 4 --balance static:1,3)
  mpi 3 "$HETRAIN" train "${s[@]}" "${l[@]}" --checkpoint-dir "$work/${mode}1" | tail -n 1
  mpi 4 "$HETRAIN" train "${s[@]}" "${l[@]}" --aggregators 2 --checkpoint-every 8 \
    --checkpoint-dir "$work/${mode}2" | grep -E "aggregators:|finished"
  echo "$variant: A = 2 against A = 1:"
  compare --quiet --exact --optimizer "$(ls "$work/${mode}1"/*-epoch.h5)" \
    "$(ls "$work/${mode}2"/*-epoch.h5)"
done
mkdir "$work/diloco_resumed"
cp "$(step_ckpt "$work/diloco2" 8)" "$work/diloco_resumed/"
mpi 4 "$HETRAIN" train "${s[@]}" --sync diloco --local-steps 4 --balance static:1,3 \
  --aggregators 2 --resume auto --checkpoint-dir "$work/diloco_resumed" | grep -E "resum|finished"
echo "diloco, A = 2 resumed at step 8, against A = 1:"
compare --quiet --exact --optimizer "$(ls "$work/diloco1"/*-epoch.h5)" \
  "$(ls "$work/diloco_resumed"/*-epoch.h5)"
# Bytes into each aggregator: rank 0's and every server's gradient bytes of a round.
$py - "$work/a2.jsonl" "$work/a3.jsonl" <<'PY'
import json, sys
for path, a in ((sys.argv[1], 2), (sys.argv[2], 3)):
    rounds = [r for r in map(json.loads, open(path)) if r["type"] == "round"]
    r = rounds[-1]
    into = [r["aggregator"]["bytes_received"]] + [s["bytes_received"] for s in r["shard_servers"]]
    print(f"A={a}: gradient bytes into each aggregator in the last round: {into}")
    assert len(into) == a, into
    assert max(into) < 1.1 * min(into) + 8 * 4096, "shards are not balanced"
PY
# Refused: fewer ranks than aggregators + 1.
for bad in "3 --aggregators 3"; do
  set -- $bad
  np=$1
  shift
  rc=0
  mpi "$np" "$HETRAIN" train "${s[@]}" "$@" --checkpoint-dir "$work/bad" >"$work/bad.log" 2>&1 ||
    rc=$?
  grep -m1 "error:" "$work/bad.log" | cut -c1-200
  expect_rc "$rc" 2 "$work/bad.log"
done
