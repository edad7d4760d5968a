#!/usr/bin/env bash
# mpi.observe: the --metrics, --timeline and --prometheus files of a 3-trainer run (2 epochs, the
# last round of each shorter) are well formed and add up (tests/tools/check_observability.py;
# promtool too where Debian's prometheus is installed); a one-process run writes the same metrics
# and a one-row timeline; scripts/plot-metrics.py draws its four non-empty PNGs from the metrics
# (the plots alone need matplotlib: without it the case ends as skipped after the other checks).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_data "$test_set"
mpi 4 "$HETRAIN" train --data "$train" --test-data "$test_set" --model mlp \
  --epochs 2 --global-batch 256 --micro-batch 32 --limit-train-samples 3000 --threads 1 \
  --checkpoint-dir "$work/ck" --metrics "$work/m.jsonl" --timeline "$work/t.json" \
  --prometheus "$work/p.prom" --progress-seconds 0.05 | grep -E "timeline|finished"
$py "$tools/check_observability.py" "$work/m.jsonl" "$work/t.json" "$work/p.prom" 3000 2 4
if command -v promtool >/dev/null; then promtool check metrics <"$work/p.prom"; fi
"$HETRAIN" train --data "$train" --model mlp --epochs 1 --limit-train-samples 1000 \
  --threads 1 --checkpoint-dir "$work/one" --metrics "$work/one.jsonl" \
  --timeline "$work/one.json" >/dev/null
$py - "$work/one.jsonl" "$work/one.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert sum(l["samples"] for l in lines if l["type"] == "round") == 1000, lines
trace = json.load(open(sys.argv[2]))
assert {e["pid"] for e in trace["traceEvents"]} == {0}
print("one process:", len(lines), "metrics records,", len(trace["traceEvents"]), "trace events")
PY
$py -c 'import matplotlib' 2>/dev/null ||
  skip "the files check out, but $py lacks matplotlib (python3-matplotlib) to plot them"
$py "$repo/scripts/plot-metrics.py" "$work/m.jsonl" --out "$work/plots"
for png in throughput epochs shares rounds; do
  [ -s "$work/plots/$png.png" ] || fail "no $png.png"
  head -c 8 "$work/plots/$png.png" | grep -q PNG || fail "$png.png is not a PNG"
done
