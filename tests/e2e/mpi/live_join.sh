#!/usr/bin/env bash
# mpi.live_join: machines that come and go while the job runs (DESIGN §7 "Live join"). Under
# ompi-server (both mpiruns get --ompi-server, as README "Machines that come and go" says), a job
# of rank 0 + 2 trainers runs with --accept-joins FILE:
#  1. `hetrain join FILE`, started by its own mpirun once round 2 is done, is taken at a round's
#     end as rank 3 and trains;
#  2. once it has worked 2 rounds it gets SIGTERM of its own: a planned leave (exit 0);
#  3. a second `hetrain join FILE` (the machine back), started once joiner 1 has exited, is taken
#     as rank 4 and trains to the end;
#  4. a third joiner started once the last round is done is not taken: one line, exit 2, at once;
#  5. bad input, each one line and exit 2 without waiting: the same FILE once the job has ended
#     (stale), a missing FILE, a FILE of another protocol version, and a job of another model.
# Checked: every process exits 0; the summary's membership_changes are joined 3, left 3, joined 4
# in that order; every sample is used exactly once per epoch (the 4 trainers' sample logs); and
# the run ends where the uninterrupted run of 2 trainers does (--sync gradient: the exact
# gradient whatever the shares, summed in another order): compared at step 20, before rounding
# differences grow (see common.sh), within $early_rtol; both joins and the leave happen before
# it (checked). Rank 0 sleeps 1 s in every second round's checkpoint (--fault-slow-checkpoint,
# a slow disk), so that the 30 rounds outlast the joins (a joiner takes about 3 s to start) on
# any CPU without using it; --lr 0.01, since splits of such runs drift apart by 6e-8 to 8e-6 by
# step 40 at that rate (measured 2026-12 on the 2-core VM with micro-batches of 1; 8.8e-4 at
# --lr 0.05; lan.live_join measured 1.9e-5 at step 20 with micro-batches of 16 at 0.05). Prints the time
# from each `hetrain join` to its first computed round.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
command -v ompi-server >/dev/null || skip "no ompi-server (Open MPI's rendezvous server)"
s=(--data "$train" --model mlp --epochs 3 --optimizer momentum --lr 0.01 --global-batch 4096
   --micro-batch 16 --limit-train-samples 40960 --threads 1 --seed 7 --progress-seconds 1000
   --keep-checkpoints 100)
step20=ckpt-s00000020-epoch.h5
mpi 3 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-dir "$work/straight" | tail -n 1
ompi-server --no-daemonize --report-uri "$work/uri" >"$work/ompi-server.log" 2>&1 &
for _ in $(seq 1 100); do [ -s "$work/uri" ] && break; sleep 0.1; done
[ -s "$work/uri" ] || fail "ompi-server wrote no URI"
server=(--ompi-server "file:$work/uri")
mpi 3 "${server[@]}" "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/ck" \
  --checkpoint-every 2 --fault-slow-checkpoint 1 --accept-joins "$work/join.json" \
  --metrics "$work/m.jsonl" --debug-sample-log "$work/samples" \
  --summary-json "$work/s.json" >"$work/log" 2>&1 &
job=$!
join() { # join N: `hetrain join` in the background as joiner N; sets JOINER and STARTED
  "$MPIEXEC" "${server[@]}" -np 1 "$HETRAIN" join "$work/join.json" --threads 1 \
    >"$work/join$1.log" 2>&1 &
  JOINER=$! STARTED=$(now)
}
wait_for "round 2" rounds_from 2
join 1
first=$JOINER
wait_for "a round of joiner 1" worked 3 1
echo "joiner 1: its first round $(since "$STARTED") s after hetrain join started"
wait_for "2 rounds of joiner 1" worked 3 2
pid=$(joiner_pid) || fail "joiner 1's hetrain process not found"
kill -TERM "$pid"
rc=0
wait "$first" || rc=$?
expect_rc "$rc" 0 "$work/join1.log"
join 2 # the machine back, once joiner 1 is gone (so that the leave comes before this join)
second=$JOINER
wait_for "a round of joiner 2" worked 4 1
echo "joiner 2: its first round $(since "$STARTED") s after hetrain join started"
# A joiner that comes as the job ends is not taken: it says so in one line and exits 2, at once
# (not after its deadline). It starts once the last round's record is written: rank 0 looks for
# joiners once more right after that, long before a joiner's start-up (3 s) is done. (Started 3
# rounds before the end, it was taken on a VM where rounds took 0.9 s instead of 0.4 s.)
wait_for "the last round" rounds_from 30
late_start=$(now)
late=0
"$MPIEXEC" "${server[@]}" -np 1 "$HETRAIN" join "$work/join.json" --threads 1 \
  >"$work/late.log" 2>&1 || late=$?
rc=0
wait "$job" || rc=$?
expect_rc "$rc" 0 "$work/log"
expect_rc "$late" 2 "$work/late.log"
grep -E "the job ended before it took this joiner|is not running" "$work/late.log" | cut -c1-160 ||
  fail "the late joiner did not say why it was not taken"
within "$late_start" 30 "the late joiner's refusal"
rc=0
wait "$second" || rc=$?
expect_rc "$rc" 0 "$work/join2.log"
grep -E "joined|leaves the job" "$work/log" | cut -c1-200
summary_check "$work/s.json" \
  '[(c["change"], c["rank"]) for c in s["membership_changes"]] == [("joined", 3), ("left", 3), ("joined", 4)]' \
  "the summary names the joins and the leave in order"
summary_check "$work/s.json" 's["steps"] == 30 and all(t["samples"] > 0 for t in s["trainers"])' \
  "every trainer worked and the run completed"
$py "$tools/check_samples.py" "$work/samples" 40960 3 4
summary_check "$work/s.json" 'max(c["round"] for c in s["membership_changes"]) < 20' \
  "the joins and the leave came before step 20, where the runs are compared"
echo "at step 20, against the uninterrupted run:"
compare --quiet "$work/straight/$step20" "$work/ck/$step20" "$early_rtol"
# Bad input: one line, exit 2, at once (not after the joiner's deadline).
bad_join() { # bad_join WHY FILE EXPECTED: `hetrain join FILE` fails with EXPECTED in its output
  local rc=0 start
  start=$(now)
  "$MPIEXEC" "${server[@]}" -np 1 "$HETRAIN" join "$2" --threads 1 >"$work/bad.log" 2>&1 || rc=$?
  grep -q "$3" "$work/bad.log" || { cat "$work/bad.log"; fail "$1: no '$3' in its output"; }
  [ "$rc" -eq 2 ] || { cat "$work/bad.log"; fail "$1: exit code $rc, expected 2"; }
  within "$start" 30 "$1"
  echo "$1: $(grep -m 1 "$3" "$work/bad.log" | cut -c1-160)"
}
bad_join "stale file" "$work/join.json" "is not running (the file is stale)"
bad_join "missing file" "$work/nothing.json" "cannot read"
$py - "$work/join.json" "$work/v1.json" "$work/cnn.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
json.dump({**t, "messages": 1}, open(sys.argv[2], "w"))
c = t["command"]
c[c.index("--model") + 1] = "cnn"
json.dump({**t, "command": c}, open(sys.argv[3], "w"))
PY
bad_join "another protocol" "$work/v1.json" "the job speaks protocol 1/"
bad_join "another model" "$work/cnn.json" "the job trains another model"
