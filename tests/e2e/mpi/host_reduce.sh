#!/usr/bin/env bash
# mpi.host_reduce: --host-reduce on (issue 16 item 4, DESIGN §6). On one machine every trainer
# shares a host, so `on` makes one group of all 4 trainers (uneven static shares 1,2,3,2): the
# members send their gradient sums (fp32) to the leader (the lowest job rank), which adds them to
# its own and uploads the host's sum; rank 0 receives 1 upload a round where `off` receives 4.
# 4866 samples in rounds of 256: the last round (step 20) has 2 samples, given by the shares to
# the 2nd and 3rd trainers only, so the leader has none (kSkip) and relays its members' sums, and
# the 4th trainer skips too. Checked:
#  - on, off, on with --aggregators 2 (the shard server receives the leader's upload), and on with
#    --overlap: each against the one-process run at step 20, tolerance $early_rtol (the sum of sums
#    differs from one process only in the order of float additions);
#  - every sample used exactly once (the trainers' own --debug-sample-log records), and the last
#    round really skipped the leader and the 4th trainer;
#  - on, sharded and overlap against off: bit-identical (compare --exact). Rank 0 adds w * x_i in
#    trainer order and the leader adds x_i in the same order before one multiplication by w; with
#    w = 1/S a power of two here (1/256, and 1/2 in the last round) the scaling is exact, so both
#    give the same bits (another S would differ by rounding only);
#  - uploads per round from --metrics (every aggregator) and the summary: 1 with on, 4 with off;
#    the summary's host_groups names the group by world ranks;
#  - --wire-dtype bf16: only the leader rounds (the host's sum, piece by piece), so with --overlap
#    (the leader converts each piece as soon as it is complete) it is bit-identical to without;
#  - a member that stalls (--fault-stall-rank 3): its leader names it, rank 0 names it and the
#    leader as lost at --straggler-timeout, checkpoints step 2 and ends the job with exit code 3.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --epochs 1 --optimizer adam --lr 1e-3 --global-batch 256
   --micro-batch 32 --limit-train-samples 4866 --threads 1 --seed 7 --progress-seconds 1000
   --chunk-mb 0.1 --balance static:1,2,3,2)
final=ckpt-s00000020-epoch.h5
"$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" >/dev/null
# run NAME NP ARGS...: a job of NP ranks with metrics, summary and sample records under NAME.
run() {
  local name=$1 np=$2; shift 2
  echo "--- $name"
  mpi "$np" "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/$name" \
    --metrics "$work/$name.jsonl" --summary-json "$work/$name.json" \
    --debug-sample-log "$work/$name-samples" "$@" | grep -E "host reduce|finished" | cut -c1-200
  compare --quiet --optimizer "$work/one/$final" "$work/$name/$final" "$early_rtol"
  $py "$tools/check_samples.py" "$work/$name-samples" 4866 1 4
}
# uploads NAME WANT [FIRST_TRAINER]: every aggregator received WANT uploads in every round, the
# summary says so, and (WANT 1) its host_groups is the 4 trainers from FIRST_TRAINER on.
uploads() {
  $py - "$work/$1.jsonl" "$work/$1.json" "$2" "${3:-1}" <<'PY'
import json, sys
metrics, summary, want, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rounds = [r for r in map(json.loads, open(metrics)) if r["type"] == "round"]
assert len(rounds) == 20, len(rounds)
for r in rounds:
    into = [r["aggregator"]["uploads"]] + [s["uploads"] for s in r["shard_servers"]]
    # The last round has 2 samples: without groups only their 2 trainers upload.
    expect = want if r["round"] < 20 or want == 1 else 2
    assert all(u == expect for u in into), (r["round"], into, expect)
s = json.load(open(summary))
print(f"uploads into each aggregator per round: {into}; summary: uploads_per_round "
      f"{s['uploads_per_round']:.2f}, host_groups {s['host_groups']}")
assert abs(s["uploads_per_round"] - (1 if want == 1 else (19 * 4 + 2) / 20)) < 1e-9, s
assert s["host_groups"] == ([list(range(first, first + 4))] if want == 1 else []), s
PY
}
run on 5 --host-reduce on
uploads on 1
# The last round (global step 19 in the records): the leader (world rank 1) and the 4th trainer had
# no samples; the 2nd and 3rd had one each.
for r in 1 2 3 4; do
  n=$(awk '$2 == 19' "$work/on-samples.rank$r" | wc -l)
  want=$([ "$r" = 2 ] || [ "$r" = 3 ] && echo 1 || echo 0)
  [ "$n" -eq "$want" ] || fail "rank $r used $n samples in the last round, expected $want"
done
echo "last round: the leader and rank 4 skipped, ranks 2 and 3 one sample each"
run off 5 --host-reduce off
uploads off 4
run sharded 6 --host-reduce on --aggregators 2
uploads sharded 1 2
run overlap 5 --host-reduce on --overlap
uploads overlap 1
for name in on sharded overlap; do
  echo "$name against off (bit-identical):"
  compare --quiet --exact --optimizer "$work/off/$final" "$work/$name/$final"
done
# bf16 uploads: the same host sums rounded alike, with and without --overlap.
for name in bf16 bf16_overlap; do
  extra=()
  [ "$name" = bf16_overlap ] && extra=(--overlap)
  mpi 5 "$HETRAIN" train "${s[@]}" --host-reduce on --wire-dtype bf16 "${extra[@]}" \
    --checkpoint-dir "$work/$name" | grep finished | cut -c1-120
done
echo "bf16 with --overlap against without (bit-identical):"
compare --quiet --exact --optimizer "$work/bf16/$final" "$work/bf16_overlap/$final"
echo "bf16 against one process (drift, for the record):"
drift "$work/one/$final" "$work/bf16/$final"
# A member (world rank 3) stalls in round 3.
rc=0
mpi 5 "$HETRAIN" train "${s[@]}" --host-reduce on --straggler-timeout 5 --fault-stall-rank 3 \
  --checkpoint-dir "$work/late" >"$work/late.log" 2>&1 || rc=$?
grep -E "host reduce: round|error: lost" "$work/late.log" | cut -c1-200
expect_rc "$rc" 3 "$work/late.log"
# The log: the job ends without a summary, and this error naming both ranks is what the user sees.
grep -q "error: lost rank 1 (.*), rank 3 (.*) in round 3" "$work/late.log" ||
  fail "rank 0 did not name the late member and its leader"
[ -f "$(printf '%s/ckpt-s%08d-abort.h5' "$work/late" 2)" ] || fail "no abort checkpoint at step 2"
# auto on one machine: every aggregator shares the trainers' host, so it stays off (no groups in
# the summary), and the log tells the user why (the reason is for them: read there).
mpi 5 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/auto" --summary-json "$work/auto.json" \
  >"$work/auto.log" 2>&1
summary_check "$work/auto.json" 's["host_groups"] == [] and s["uploads_per_round"] > 1' \
  "auto made host groups on one host"
grep -E "host reduce: off \(auto\)" "$work/auto.log" ||
  fail "auto did not say why it stays off on one host"
