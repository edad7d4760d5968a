#!/usr/bin/env bash
# mpi.rejection: a trainer failing admission (its probe made 100x slower, --fault-slow-probe-rank,
# against --min-relative-speed 0.2) is rejected with its reason (the summary's admission) and logs
# its own rejection; the job goes on without it and the others train every sample. With --require-gpu and no GPU anywhere
# nobody is admitted: a clear error and a non-zero exit code (on a machine with GPUs they are
# hidden from that job with CUDA_VISIBLE_DEVICES, which every rank inherits from mpiexec).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# The healthy trainers' probes would have to differ 20x by chance (100 x 0.2) to change the verdicts.
out=$(mpi 4 "$HETRAIN" train --data "$train" --model mlp --epochs 1 --global-batch 64 \
  --micro-batch 16 --limit-train-samples 640 --threads 1 --min-relative-speed 0.2 \
  --fault-slow-probe-rank 2 --checkpoint-dir "$work/ck" --summary-json "$work/s.json" 2>&1)
echo "$out" | grep -E "rejected|plan:|finished" || true # shown, not checked
summary_check "$work/s.json" 'not admission(2)["admitted"] and admission(2)["reason"].endswith(
  "below --min-relative-speed 0.2")' "rank 2 was not rejected for its speed"
summary_check "$work/s.json" 'admission(1)["admitted"] and admission(3)["admitted"]' \
  "ranks 1 and 3 were not both admitted"
# The log: a rejected trainer writes no summary; its own message is all its user sees.
echo "$out" | grep -q "not admitted by rank 0" || fail "rank 2 did not log its own rejection"
$py - "$work/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ranks = sorted(t["rank"] for t in s["trainers"])
assert ranks == [1, 3], ranks
assert sum(t["samples"] for t in s["trainers"]) == 640
print("rejection: rank 2 left out, ranks", ranks, "trained all 640 samples")
PY
# No GPU anywhere and --require-gpu: nobody is admitted, so the job ends with a clear error.
code=0
none=$(CUDA_VISIBLE_DEVICES="" mpi 3 "$HETRAIN" train --data "$train" --model mlp --epochs 1 --limit-train-samples 640 \
  --threads 1 --require-gpu --checkpoint-dir "$work/ck2" 2>&1) || code=$?
echo "$none" | grep -E "no trainer was admitted" | head -1
[ "$code" -ne 0 ] || fail "a job without trainers exited 0"
# The log: the job fails before any summary, and this message is what the user gets.
echo "$none" | grep -q "no trainer was admitted" || { echo "$none" | tail; fail "no clear message"; }
