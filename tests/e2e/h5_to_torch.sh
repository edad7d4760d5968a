#!/usr/bin/env bash
# scripts/h5_to_torch.py: a converted checkpoint, loaded into the equivalent PyTorch model, gives
# the test accuracy `hetrain evaluate` gives (within 0.1 percentage points), for the mlp and the
# cnn (BatchNorm buffers included): the same weights in another implementation, so a prediction
# can change only for an image whose two top logits tie to within rounding. Skipped (exit 77) when
# Debian's python3-torch or the data is missing.
# Usage: h5_to_torch.sh   with HETRAIN and DATA (data folder) in the environment.
set -euo pipefail
py=/usr/bin/python3
$py -c 'import torch, h5py' 2>/dev/null || { echo "SKIPPED: python3-torch or python3-h5py missing"; exit 77; }
for f in "$DATA/fashion-mnist-train.h5" "$DATA/fashion-mnist-test.h5"; do
  [ -f "$f" ] || { echo "SKIPPED: missing $f: run scripts/prepare-data.sh"; exit 77; }
done
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
train=$DATA/fashion-mnist-train.h5 test=$DATA/fashion-mnist-test.h5
for model in mlp cnn; do
  "$HETRAIN" train --data "$train" --model "$model" --epochs 1 --limit-train-samples 3000 \
    --checkpoint-dir "$work/$model" --progress-seconds 1000 >/dev/null
  ckpt=$(find "$work/$model" -name 'ckpt-*-epoch.h5' | sort | tail -n 1)
  "$HETRAIN" evaluate --checkpoint "$ckpt" --data "$test" --json >"$work/$model-hetrain.json"
  $py "$here/../../scripts/h5_to_torch.py" "$ckpt" "$work/$model.pt" --evaluate "$test" --json \
    >"$work/$model-torch.json"
  $py - "$work" "$model" <<'PY'
import json, sys
import torch
work, model = sys.argv[1], sys.argv[2]
ours = json.load(open(f"{work}/{model}-hetrain.json"))
theirs = json.load(open(f"{work}/{model}-torch.json"))
state = torch.load(f"{work}/{model}.pt")
assert len(state) == theirs["tensors"] > 0
a, b = ours["accuracy"], theirs["accuracy"]
print(f"{model}: hetrain evaluate {a:.4f}, PyTorch with the converted state_dict {b:.4f}")
assert abs(a - b) <= 0.001, f"accuracies differ by {abs(a - b):.4f}"
PY
done
# A file that is not a checkpoint is refused with exit 2 and no output file.
set +e
$py "$here/../../scripts/h5_to_torch.py" "$train" "$work/bad.pt" 2>"$work/err"; rc=$?
set -e
cat "$work/err"
[ $rc -eq 2 ] && grep -q "not a hetrain checkpoint" "$work/err" && [ ! -e "$work/bad.pt" ] \
  || { echo "a dataset file was not refused properly (rc $rc)"; exit 1; }
