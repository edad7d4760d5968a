#!/usr/bin/env bash
# mpi.overlap: --overlap sends gradient chunks during the last backward pass, in the order backward
# finishes them (chunks of 0.1 MB: the cnn's 1.7 MB travel as 17, last layers first). The bytes
# and the reduction are the same, so the result is bit-identical to the run without it (max abs
# difference exactly 0 in the parameters, the BatchNorm statistics and the momentum), and no
# warning is logged.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model cnn --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 32 --limit-train-samples 2560 --threads 1 --seed 5 --progress-seconds 1000
   --balance static:3,5 --chunk-mb 0.1)
mpi 3 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/plain" | tail -n 1
mpi 3 "$HETRAIN" train "${s[@]}" --overlap --checkpoint-dir "$work/overlap" >"$work/log" 2>&1
tail -n 1 "$work/log"
# The log: no warning is shown to the user (the contract of --overlap here).
if grep -q "warning" "$work/log"; then grep warning "$work/log"; fail "a warning with --overlap"; fi
compare --quiet --exact "$work"/plain/ckpt-*-epoch.h5 "$work"/overlap/ckpt-*-epoch.h5
