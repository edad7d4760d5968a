#!/usr/bin/env bash
# mpi.links: the link probe at startup (DESIGN §3) on one host. A short job with --aggregators 2
# and 2 trainers (world ranks 2, 3) measures all 4 trainer-aggregator pairs; checked:
#  - the summary's "links": every pair once, latency >= 0, positive up and down MB/s, a positive
#    message size, up_bound and down_bound (exact, at_least or at_most), and same_host true for
#    every pair (all ranks share this host);
#  - the probe's duration (the summary's link_probe_seconds) within its budget
#    (--link-probe-seconds 2, plus 2 s for ranks that start late on a loaded machine);
#  - the --metrics file starts with a "links" record holding the same pairs, and the round
#    records carry each trainer's measured transfer_seconds;
#  - the checkpoint's trainer reports carry their links (what `hetrain inspect` shows);
#  - --link-probe-seconds 0: no probe, "links": [], link_probe_seconds 0, and the log says the
#    plan assumes 1 GB/s (a message for the user: that assumption is nowhere else);
#  - --link-probe-seconds -1 is refused with exit code 2.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --global-batch 128 --micro-batch 32
   --limit-train-samples 512 --threads 1 --seed 3 --progress-seconds 1000 --chunk-mb 0.1)
mpi 4 "$HETRAIN" train "${s[@]}" --aggregators 2 --checkpoint-dir "$work/c" \
  --summary-json "$work/summary.json" --metrics "$work/metrics.jsonl" >"$work/log" 2>&1 ||
  { tail -n 30 "$work/log"; fail "the job failed"; }
grep -E "links:|trainer +host|same host|^.* +[23] .* (yes|no)$" "$work/log" | cut -c1-160 || true
"$py" - "$work/summary.json" "$work/metrics.jsonl" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
links = summary["links"]
pairs = sorted((l["trainer_rank"], l["aggregator_rank"]) for l in links)
assert pairs == [(2, 0), (2, 1), (3, 0), (3, 1)], pairs
keys = {"trainer_rank", "aggregator_rank", "same_host", "latency_ms", "up_mb_per_s",
        "down_mb_per_s", "message_bytes", "up_bound", "down_bound"}
for l in links:
    assert set(l) == keys, l
    assert l["same_host"] is True, l
    assert l["latency_ms"] >= 0 and l["up_mb_per_s"] > 0 and l["down_mb_per_s"] > 0, l
    assert l["message_bytes"] > 0, l
    assert {l["up_bound"], l["down_bound"]} <= {"exact", "at_least", "at_most"}, l
records = [json.loads(line) for line in open(sys.argv[2])]
assert records[0]["type"] == "links", records[0]
assert sorted((l["trainer_rank"], l["aggregator_rank"]) for l in records[0]["links"]) == pairs
rounds = [r for r in records if r["type"] == "round"]
assert rounds and all("transfer_seconds" in t for r in rounds for t in r["trainers"]), rounds[0]
took = summary["link_probe_seconds"]
assert 0 < took < 4.0, f"the probe took {took} s"
assert summary["link_probe_wait_seconds"] >= 0, summary["link_probe_wait_seconds"]
print(f"links: 4 pairs, probe {took:.2f} s, up MB/s", [round(l["up_mb_per_s"]) for l in links])
PY
"$py" - "$work/c" <<'PY'
import glob, json, sys, h5py
path = sorted(glob.glob(sys.argv[1] + "/ckpt-*.h5"))[-1]
with h5py.File(path, "r") as f:
    reports = [json.loads(r) for r in f["cluster/reports"][()]]
links = {r["rank"]: r["links"] for r in reports}
assert sorted(links) == [2, 3], links
for rank, l in links.items():
    assert sorted(x["aggregator_rank"] for x in l) == [0, 1], l
print("checkpoint: every trainer report has its links")
PY
"$HETRAIN" inspect --json "$(ls "$work"/c/ckpt-*.h5 | tail -n 1)" |
  "$py" -c 'import json,sys; j=json.load(sys.stdin); assert len(j["links"]) == 4, j.get("links"); print("inspect: 4 links")'
# The probe off: no figures, and the plan says what it assumes.
mpi 3 "$HETRAIN" train "${s[@]}" --link-probe-seconds 0 --checkpoint-dir "$work/off" \
  --summary-json "$work/off.json" >"$work/off.log" 2>&1 ||
  { tail -n 30 "$work/off.log"; fail "the job without a probe failed"; }
# The log: the user is told what the plan assumes instead of measured figures.
grep -q "assumes every link moves 1 GB/s" "$work/off.log" || fail "no 1 GB/s line"
summary_check "$work/off.json" 's["links"] == [] and s["link_probe_seconds"] == 0' \
  "the probe off left figures or a duration"
rc=0
"$HETRAIN" train "${s[@]}" --link-probe-seconds -1 >"$work/bad.log" 2>&1 || rc=$?
expect_rc "$rc" 2 "$work/bad.log"
grep -o -- "--link-probe-seconds: .*" "$work/bad.log"
echo "mpi.links: OK"
