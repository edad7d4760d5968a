#!/usr/bin/env bash
# mpi.sync_auto: --sync auto (DESIGN §5 "Choosing the sync mode"), 1 + 2 ranks, static shares 1,1
# (so that the computation is fixed and the runs below compare bit for bit):
#  1. the cnn on one machine: its links move the 1.7 MB gradient in milliseconds against a
#     quarter second of compute, so rank 0 chooses gradient, says why with the figures, and the
#     run is --sync gradient's bit for bit (the same computation; --deterministic). (The mlp's
#     round computes in about 1 ms, so there even this machine's links are half its compute, and
#     auto rightly chooses diloco.)
#  2. with --auto-comm-fraction 1e-9 (no link is that fast) it chooses diloco: with --local-steps
#     5 given, the run is --sync diloco --local-steps 5's bit for bit; without (or with the
#     default, 4, which cannot be told apart), it picks the period itself (at least 2 local steps)
#     and the summary records it;
#  3. the trainers build for the decided mode: in 2 they keep their own optimizers, which the
#     final checkpoint holds (/trainer_optimizers), as any diloco run's.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 32 --limit-train-samples 2560 --threads 1 --seed 7 --balance static:1,1
   --progress-seconds 1000)
final=ckpt-s00000010-epoch.h5
run() { # run NAME ARGS...: the job, its log in $work/NAME.log
  local name=$1
  shift
  mpi 3 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/$name" \
    --summary-json "$work/$name.json" "$@" >"$work/$name.log" 2>&1 ||
    { tail -n 20 "$work/$name.log"; fail "$name: the run failed"; }
}
cnn=(--model cnn --deterministic --optimizer adam --lr 1e-3)
run gradient "${cnn[@]}" --sync gradient
run auto "${cnn[@]}" --sync auto
grep -E "sync auto" "$work/auto.log" | cut -c1-200
summary_check "$work/auto.json" 's["sync"] == "gradient" and s["local_steps"] == 1' \
  "fast links: auto chose exact gradients"
summary_check "$work/auto.json" 's["sync_choice"].startswith("gradient: the exact round moves")' \
  "the summary says why, with the figures"
compare --quiet --exact "$work/gradient/$final" "$work/auto/$final"

run diloco --sync diloco --local-steps 5
run auto5 --sync auto --auto-comm-fraction 1e-9 --local-steps 5
grep -E "sync auto" "$work/auto5.log" | cut -c1-200
summary_check "$work/auto5.json" 's["sync"] == "diloco" and s["local_steps"] == 5' \
  "slow links (by the fraction): auto chose diloco with the given period"
compare --quiet --exact --optimizer "$work/diloco/$final" "$work/auto5/$final"
run autoL --sync auto --auto-comm-fraction 1e-9
grep -E "sync auto" "$work/autoL.log" | cut -c1-200
summary_check "$work/autoL.json" \
  's["sync"] == "diloco" and s["local_steps"] >= 2 and "a sync every" in s["sync_choice"]' \
  "without --local-steps auto picks the period"
$py - "$work/auto5/$final" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    assert "trainer_optimizers" in f, list(f)
    print("trainers' own optimizers in the checkpoint:", sorted(f["trainer_optimizers"]))
PY
