#!/usr/bin/env bash
# mpi.oom: --fault-oom-above 8 (testing only) makes micro-batches above 8 samples fail as out of
# memory: a trainer halves 32 -> 16 -> 8, recomputes from zeroed gradients and reports 8 to rank
# 0, which logs it and records it in the summary (trainers[].micro_batch, checked). The mlp has no BatchNorm, so the result is the same computation as a run with
# --micro-batch 8 (same sums, same order): bit-identical in one process, and bit-identical under
# mpirun against the same trainers and shares with --micro-batch 8. Against the one-process run
# the split differs by its summation order only: compared at the end, step 20 (1280 samples in
# rounds of 64), tolerance $early_rtol (measured 2026-11 on the 2-core VM: 1.2e-7).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 64
   --limit-train-samples 1280 --threads 1 --seed 3 --progress-seconds 1000)
ck=ckpt-s00000020-epoch.h5
"$HETRAIN" train "${s[@]}" --micro-batch 8 --checkpoint-dir "$work/eight" | tail -n 1
"$HETRAIN" train "${s[@]}" --micro-batch 32 --fault-oom-above 8 --checkpoint-dir "$work/one" \
  2>&1 | grep -E "out of memory" | head -n 2
echo "one process, halved to 8, against --micro-batch 8:"
compare --quiet --exact "$work/eight/$ck" "$work/one/$ck"
mpi 3 "$HETRAIN" train "${s[@]}" --micro-batch 32 --fault-oom-above 8 --balance static:1,1 \
  --checkpoint-dir "$work/two" --summary-json "$work/s.json" >"$work/log" 2>&1
grep -E "out of memory" "$work/log" | cut -c1-200 | head -n 3 || true # shown, not checked
$py - "$work/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert [t["micro_batch"] for t in s["trainers"]] == [8, 8], s["trainers"]
print("trainers report micro-batches of", [t["micro_batch"] for t in s["trainers"]])
PY
mpi 3 "$HETRAIN" train "${s[@]}" --micro-batch 8 --balance static:1,1 \
  --checkpoint-dir "$work/two_eight" | tail -n 1
echo "2 trainers, halved to 8, against 2 trainers with --micro-batch 8:"
compare --quiet --exact "$work/two_eight/$ck" "$work/two/$ck"
echo "2 trainers, halved to 8, against one process with --micro-batch 8:"
compare --quiet "$work/eight/$ck" "$work/two/$ck" "$early_rtol"
