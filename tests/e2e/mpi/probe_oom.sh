#!/usr/bin/env bash
# mpi.probe_oom: a trainer whose start-up training probe runs out of memory no longer ends the
# job (cluster/training_probe.cpp). (1) --fault-oom-above 8 with --micro-batch 32: every probe
# halves 32 -> 16 -> 8 as training does, says so, and the job completes (its trainers ran 8: the summary).
# (2) --fault-probe-oom-rank 2: rank 2's probe runs out of memory at every size down to 1 sample;
# it says why, rank 0 rejects it (the summary's admission: "its training probe did not run") and
# the job completes with the other trainers, which train every sample. The trainers' own warnings
# are read in the log: what a probe timed is the trainer's to say (its report to rank 0 carries the
# speed, not the micro-batch), and a rejected trainer writes no summary.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --global-batch 64 --limit-train-samples 640 --threads 1
   --progress-seconds 1000)
mpi 3 "$HETRAIN" train "${s[@]}" --micro-batch 32 --fault-oom-above 8 \
  --checkpoint-dir "$work/halved" --summary-json "$work/halved.json" >"$work/halved.log" 2>&1 ||
  { tail -n 20 "$work/halved.log"; fail "the halving job failed"; }
grep -E "training probe" "$work/halved.log" | cut -c1-200 | head -n 4 || true # shown
# (The plan may leave one trainer out on a loaded machine: those that trained.)
summary_check "$work/halved.json" \
  '{t["micro_batch"] for t in s["trainers"] if t["samples"] > 0} == {8}' \
  "the trainers did not train with micro-batches of 8"
[ "$(grep -c "training probe: timed with micro-batches of 8 samples (--micro-batch 32 ran out" "$work/halved.log")" -eq 2 ] ||
  fail "not every trainer's probe halved to 8"
mpi 4 "$HETRAIN" train "${s[@]}" --micro-batch 16 --fault-probe-oom-rank 2 \
  --checkpoint-dir "$work/ck" --summary-json "$work/s.json" >"$work/log" 2>&1 || { tail -n 20 "$work/log"; fail "the job failed"; }
grep -E "training probe: out of memory even|rejected|not admitted|finished" "$work/log" |
  cut -c1-200 || true # shown
grep -q "\[r2 .*training probe: out of memory even with a micro-batch of 1 sample" "$work/log" ||
  fail "rank 2 did not say why its probe failed"
summary_check "$work/s.json" \
  'admission(2)["reason"] == "its training probe did not run" and not admission(2)["admitted"]' \
  "rank 0 did not reject rank 2 for its probe"
$py - "$work/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ranks = sorted(t["rank"] for t in s["trainers"])
assert ranks == [1, 3], ranks
assert sum(t["samples"] for t in s["trainers"]) == 640
print("probe_oom: rank 2 rejected, ranks", ranks, "trained all 640 samples")
PY
