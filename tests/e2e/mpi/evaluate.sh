#!/usr/bin/env bash
# mpi.evaluate: hetrain evaluate under mpirun: 3 ranks, rank 2 slowed by sharing a CPU with rank 1
# (pinned), split the 10000 test images by measured speed and give the one-process accuracy and
# loss. The split changes only which images share a batch: the loss sums (fp32 within a batch)
# differ by rounding, measured 3e-9 relative (2026-11, 2-core VM), tolerance 1e-6; the correct
# counts are integers, equal in every run measured; up to 2 of the 10000 images may change their
# prediction (only one whose two top logits tie to within rounding could).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_data "$test_set"
"$HETRAIN" train --data "$train" --model mlp --epochs 1 --limit-train-samples 3000 --threads 1 \
  --checkpoint-dir "$work/ck" >/dev/null
ck=$(ls "$work"/ck/ckpt-*-epoch.h5)
pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  cpu=$($py -c 'import os; print(min(os.sched_getaffinity(0)))')
  pin=(--bind-to none "$repo/scripts/pin-rank.sh" "1:$cpu 2:$cpu")
fi
one=$("$HETRAIN" evaluate --checkpoint "$ck" --data "$test_set" --json)
many=$(mpi 3 "${pin[@]}" "$HETRAIN" evaluate --checkpoint "$ck" --data "$test_set" --json \
  --threads 1 2>"$work/err") || { cat "$work/err"; fail "hetrain evaluate under mpirun failed"; }
grep "evaluate:" "$work/err"
$py - "$one" "$many" <<'PY'
import json, sys
one, many = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("one process:", one["accuracy"], one["loss"], "| 3 ranks:", many["accuracy"], many["loss"])
assert many["samples"] == one["samples"] == 10000, (one, many)
assert abs(many["accuracy"] - one["accuracy"]) * 10000 <= 2 + 1e-9, "accuracy differs"
assert abs(many["loss"] - one["loss"]) <= 1e-6 * abs(one["loss"]), "loss differs"
PY
