#!/usr/bin/env bash
# mpi.torn_checkpoint: rank 0 dies (SIGKILL, --fault-crash-in-checkpoint 3) inside its 3rd
# checkpoint write: the two before stay valid, the half-written one never appears under its final
# name, and --resume auto continues from the newest valid one to the end.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --global-batch 64 --micro-batch 16
   --limit-train-samples 2000 --threads 1 --checkpoint-every 2 --keep-checkpoints 10
   --progress-seconds 1000 --checkpoint-dir "$work/ck")
rc=0
mpi 3 "$HETRAIN" train "${s[@]}" --fault-crash-in-checkpoint 3 >"$work/crash.log" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "the job did not die"
ls "$work/ck"
[ ! -e "$(step_ckpt "$work/ck" 6)" ] || fail "the torn checkpoint has its final name"
compgen -G "$(step_ckpt "$work/ck" 6).tmp-*" >/dev/null || fail "expected the half-written temporary file"
for step in 2 4; do
  "$HETRAIN" inspect "$(step_ckpt "$work/ck" $step)" | grep -E "^  position"
done
mpi 2 "$HETRAIN" train "${s[@]}" --resume auto --summary-json "$work/s.json" |
  grep -E "resuming|finished"
$py - "$work/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["steps"] == 32, s["steps"]  # 2000 samples in steps of 64
print("resumed from step 4 and finished:", s["steps"], "steps")
PY
