#!/usr/bin/env bash
# mpi.plugin: the example C++ model plugin (examples/plugin, `--model-plugin LIB.so:tiny_cnn`,
# PLUGIN = the built library) trains under mpirun (1 aggregator + 2 trainers) and resumes from its
# checkpoint:
#  - a resume from the step-5 checkpoint (mid-epoch) goes on to step 20 and, with the same
#    trainers and static shares, is bit-identical to the uninterrupted run (as mpi.resume for the
#    built-in models: the same computation);
#  - the checkpoint names the plugin (`model` = plugin:LIB.so:NAME) and holds the module's own
#    parameter names; `hetrain inspect` and `hetrain evaluate` read it (evaluate loads the plugin
#    again), and scripts/h5_to_torch.py turns it into a state_dict of the same names;
#  - resuming it with another model (--model mlp) is refused: exit 2, one line naming the
#    checkpoint's model, no file written.
#
# Numbers: 2560 samples = 10 rounds of 256 per epoch, 2 epochs = 20 steps, a checkpoint every 5.
# The tiny cnn after 20 momentum steps must beat chance (0.1) clearly: > 0.3 test accuracy.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
: "${PLUGIN:?set PLUGIN to the example plugin library (libhetrain_example_plugin.so)}"
[ -f "$PLUGIN" ] || fail "PLUGIN=$PLUGIN: no such file (the build makes it)"
need_data "$test_set"
base=(--data "$train" --optimizer momentum --lr 0.05 --global-batch 256 --micro-batch 32
      --limit-train-samples 2560 --threads 1 --deterministic --seed 7 --progress-seconds 1000)
s=("${base[@]}" --model-plugin "$PLUGIN:tiny_cnn" --keep-checkpoints 20 --balance "static:3,5")
final=ckpt-s00000020-epoch.h5

mpi 3 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-every 5 --checkpoint-dir "$work/straight" |
  tail -n 1
ref=$work/straight/$final
from=$(step_ckpt "$work/straight" 5)
{ [ -f "$ref" ] && [ -f "$from" ]; } || fail "the straight run left no $final or step-5 checkpoint"

echo "--- resumed from step 5: on to step 20, bit-identical to the straight run"
mpi 3 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-dir "$work/resumed" --resume "$from" \
  --summary-json "$work/resumed.json" | grep -E "resuming|finished"
$py - "$work/resumed.json" "$from" <<'PY'
import json, sys, h5py
s = json.load(open(sys.argv[1]))
with h5py.File(sys.argv[2]) as f:
    start = int(f.attrs["global_step"])
assert s["steps"] == 20 > start, (s["steps"], start)
assert [r["epoch"] for r in s["history"]] == [1, 2], s["history"]
print(f"resumed at step {start}, finished at step {s['steps']}")
PY
[ -f "$work/resumed/$final" ] || fail "the resumed run left no $final"
compare --quiet --exact "$ref" "$work/resumed/$final"

echo "--- the checkpoint: the plugin's model and names; inspect, evaluate, h5_to_torch read it"
$py - "$ref" "$PLUGIN" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1]) as f:
    model = f.attrs["model"]
    model = model.decode() if isinstance(model, bytes) else str(model)
    names = sorted(f["params"])
    assert model.startswith("plugin:") and model.endswith(":tiny_cnn"), model
    assert sys.argv[2] in model, (model, sys.argv[2])
    assert f.attrs["model_fingerprint"], "no model_fingerprint"
assert names and all(n and not n.startswith(".") for n in names), names
print(f"model {model}: parameters {names}")
PY
"$HETRAIN" inspect "$ref" >"$work/inspect.txt" || fail "hetrain inspect failed on a plugin checkpoint"
grep -q "tiny_cnn" "$work/inspect.txt" || fail "hetrain inspect does not name the plugin model"
"$HETRAIN" evaluate --checkpoint "$ref" --data "$test_set" --json >"$work/eval.json"
$py - "$work/eval.json" <<'PY'
import json, sys
acc = json.load(open(sys.argv[1]))["accuracy"]
print(f"hetrain evaluate: test accuracy {acc:.4f}")
assert 0.3 < acc <= 1.0, acc
PY
if /usr/bin/python3 -c 'import torch, h5py' 2>/dev/null; then
  /usr/bin/python3 "$repo/scripts/h5_to_torch.py" "$ref" "$work/plugin.pt"
  /usr/bin/python3 - "$ref" "$work/plugin.pt" <<'PY'
import sys, h5py, torch
state = torch.load(sys.argv[2])
with h5py.File(sys.argv[1]) as f:
    want = {n for g in ("params", "buffers", "frozen") if g in f for n in f[g]}
assert set(state) == want, (sorted(state), sorted(want))
PY
fi

echo "--- resuming with another model is refused"
mkdir -p "$work/refused"
rc=0
out=$("$HETRAIN" train "${base[@]}" --model mlp --epochs 2 --checkpoint-dir "$work/refused" \
  --resume "$ref" 2>&1) || rc=$?
echo "$out" | tail -n 1
[ $rc -eq 2 ] || { echo "$out" | tail -n 20 >&2; fail "exit code $rc, expected 2"; }
echo "$out" | grep -q "tiny_cnn" || fail "the message does not name the checkpoint's model"
[ -z "$(ls -A "$work/refused")" ] || fail "the refused run wrote $(ls "$work/refused")"
