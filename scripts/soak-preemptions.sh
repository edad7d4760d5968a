#!/usr/bin/env bash
# A soak of preemptions (issue 17 item 7) and membership changes (issue 26): one training run
# through at least N interruptions, each resumed with another number of trainers, with trainers
# lost and trainers leaving on their own signal between them, checked for lost or repeated work
# and for accuracy.
#
#   scripts/soak-preemptions.sh [--preemptions N] [--seed S] [--out DIR]
#   env: HETRAIN (build/hetrain), DATA (data/), MODEL (cnn), EPOCHS (3), SAMPLES (20000: the
#        training set's first SAMPLES, so that a run of 3 epochs gives N preemptions room)
#
# Each run (mpirun --enable-recovery, --on-trainer-loss continue, --resume auto from the same
# checkpoint folder) gets a world of 3, 4 or 5 ranks (1 aggregator + 2..4 trainers) drawn from
# --seed; in every other run a random trainer is SIGKILLed in its 3rd round (--fault-kill-rank),
# which rank 0 survives by redoing that round without it; in every other run a random trainer gets
# SIGTERM of its own once training has started (a planned leave, DESIGN §7: it leaves after its
# round, the others go on, nothing redone); and once training has started (and the lost trainer
# has been dropped, or the leaver has left), SIGUSR1 goes to mpirun after a random 0.5-3.4 s:
# rank 0 finishes the round, writes ckpt-*-signal.h5 and exits 4 (a preemption; the next run, on
# another world size, is a restart that adds or removes trainers). In every third run (the 1st,
# 4th, ...) a machine joins the running job first (`hetrain join` by its own mpirun under one
# ompi-server, DESIGN §7 "Live join"): the run goes on once rank 0 has taken it, and the joiner
# ends with the run (exit 0). When N preemptions are done the last run trains to the end.
# Membership changes counted: preemption restarts, lost trainers, planned leaves, live joins.
# Then, from the trainers' own --debug-sample-log records (tests/tools/check_soak.py): every sample
# of every epoch used exactly once, and no step up to a run's checkpoint computed again later
# (nothing lost before the checkpoint; a round abandoned after it is counted); and the final test
# accuracy within 0.5 points of an uninterrupted run of 1 + 3 trainers. Prints one JSON line of
# figures; exit 1 when a check fails, 2 for bad usage. Needs Open MPI's mpirun, python3 with h5py
# not needed; ompi-server for the joins. About 3-6 minutes on the 2-core VM.
set -euo pipefail
cd "$(dirname "$0")/.."
preemptions=10 seed=1 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --preemptions | --seed | --out)
      [ $# -ge 2 ] || { echo "soak: $1 needs a value" >&2; exit 2; }
      case $1 in --preemptions) preemptions=$2 ;; --seed) seed=$2 ;; --out) out=$2 ;; esac
      shift 2 ;;
    *) echo "soak: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
HETRAIN=${HETRAIN:-build/hetrain}
DATA=${DATA:-data}
MODEL=${MODEL:-cnn}
EPOCHS=${EPOCHS:-3}
SAMPLES=${SAMPLES:-20000}
py=/usr/bin/python3
[ -x "$HETRAIN" ] || { echo "soak: HETRAIN=$HETRAIN is not executable (build first)" >&2; exit 2; }
[ -f "$DATA/fashion-mnist-train.h5" ] || { echo "soak: no $DATA/fashion-mnist-train.h5 (scripts/prepare-data.sh)" >&2; exit 2; }
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=${out:-$(mktemp -d /tmp/hetrain-soak.XXXXXX)}
mkdir -p "$work"
command -v ompi-server >/dev/null || { echo "soak: no ompi-server (Open MPI's rendezvous server)" >&2; exit 2; }
ompi-server --no-daemonize --report-uri "$work/uri" >"$work/ompi-server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/uri" ] && break; sleep 0.1; done
[ -s "$work/uri" ] || { echo "soak: ompi-server wrote no URI" >&2; exit 1; }
RANDOM=$seed
s=(train --data "$DATA/fashion-mnist-train.h5" --test-data "$DATA/fashion-mnist-test.h5"
   --model "$MODEL" --epochs "$EPOCHS" --limit-train-samples "$SAMPLES" --global-batch 256
   --micro-batch 32 --threads 1 --seed 7 --progress-seconds 1000 --straggler-timeout 4
   --on-trainer-loss continue --checkpoint-every 4 --keep-checkpoints 3)
server=(--ompi-server "file:$work/uri")
mpi() { # mpi NP LOG ARGS...: mpirun --enable-recovery in the background; sets PID and CODE_FILE
  local np=$1 log=$2; shift 2
  CODE_FILE=$(mktemp "$work/code.XXXXXX")
  HETRAIN_EXIT_CODE_FILE=$CODE_FILE mpirun -x HETRAIN_EXIT_CODE_FILE --enable-recovery \
    "${server[@]}" --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 "$HETRAIN" "$@" >"$log" 2>&1 &
  PID=$!
}
finish() { # sets RC: rank 0's exit code (mpirun --enable-recovery exits 0 whatever it is)
  local mrc=0
  wait "$PID" || mrc=$?
  RC=$(cat "$CODE_FILE" 2>/dev/null || true)
  [ -n "$RC" ] || RC=$((mrc == 0 ? 1 : mrc))
}

echo "soak: uninterrupted reference (1 + 3 trainers) in $work/straight"
mpi 4 "$work/straight.log" "${s[@]}" --checkpoint-dir "$work/straight" --summary-json "$work/straight.json"
finish
[ "$RC" = 0 ] || { tail -n 20 "$work/straight.log"; echo "soak: the reference run failed ($RC)" >&2; exit 1; }

# trainer_pid LOG RANK: the pid of world rank RANK of the job writing LOG (its environment says)
trainer_pid() {
  local p
  for p in $(pgrep -f "$HETRAIN train --data"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return
    fi
  done
}
# join RUN: a machine joins the job of run RUN once rank 0 has made its plan; sets JOINER (pid)
# and waits up to 60 s until rank 0 has taken it.
join() {
  mpirun "${server[@]}" -np 1 "$HETRAIN" join "$work/join.json" --threads 1 \
    >"$work/join$1.log" 2>&1 &
  JOINER=$!
  for _ in $(seq 1200); do grep -q "joined the job after round" "$log" 2>/dev/null && return; kill -0 "$PID" 2>/dev/null || return; sleep 0.05; done
}
done_preemptions=0 kills=0 leaves=0 joins=0 run=0 prefixes=() worlds=() last_step=0
while :; do
  run=$((run + 1))
  np=$((3 + RANDOM % 3))
  extra=()
  if [ $((run % 2)) = 0 ]; then
    victim=$((1 + RANDOM % (np - 1)))
    extra=(--fault-kill-rank "$victim")
  fi
  log=$work/run$run.log
  prefixes+=("$work/samples.run$run")
  worlds+=("$np")
  mpi "$np" "$log" "${s[@]}" --checkpoint-dir "$work/ck" --resume auto \
    --debug-sample-log "$work/samples.run$run" --summary-json "$work/run$run.json" "${extra[@]}" \
    --accept-joins "$work/join.json"
  JOINER=""
  if [ "$done_preemptions" -lt "$preemptions" ]; then
    for _ in $(seq 600); do grep -q "plan:" "$log" 2>/dev/null && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
    [ $((run % 3)) != 1 ] || join "$run"
    # A run that loses a trainer is preempted only after rank 0 has gone on without it (its
    # --straggler-timeout), so that the round redone on the survivors is part of the soak.
    if [ ${#extra[@]} -gt 0 ]; then
      for _ in $(seq 600); do grep -q "(without the lost rank" "$log" 2>/dev/null && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
    else # a planned leave: SIGTERM to one trainer alone, once it has worked a round
      sleep 1 # a few rounds: a trainer's signal is judged after a round it worked in
      leaver=$(trainer_pid "$log" $((1 + RANDOM % (np - 1))))
      [ -z "$leaver" ] || kill -TERM "$leaver" 2>/dev/null || true
      for _ in $(seq 600); do grep -q "leaves the job" "$log" 2>/dev/null && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
    fi
    sleep "$((RANDOM % 6 / 2)).$((RANDOM % 10))"  # 0.0 .. 2.9 s, drawn from --seed
    sleep 0.5
    kill -USR1 "$PID" 2>/dev/null || true
  fi
  finish
  if [ -n "$JOINER" ]; then # it ends with the run: kStop from rank 0, or the run's end
    jrc=0
    timeout 60 tail --pid="$JOINER" -f /dev/null || true
    wait "$JOINER" || jrc=$?
    [ "$jrc" = 0 ] || { tail -n 20 "$work/join$run.log"; echo "soak: the joiner of run $run exited $jrc" >&2; exit 1; }
    grep -q "joined the job after round" "$log" ||
      { tail -n 20 "$work/join$run.log"; echo "soak: the joiner of run $run was not taken" >&2; exit 1; }
    joins=$((joins + 1))
  fi
  resumed=$(grep -o "resuming from [^:]*: epoch [0-9]*, [0-9]* samples into it, step [0-9]*" "$log" | grep -o "step [0-9]*$" | cut -d' ' -f2 || true)
  [ -z "$resumed" ] || [ "$resumed" = "$last_step" ] ||
    { echo "soak: run $run resumed at step $resumed, but the last checkpoint was at step $last_step" >&2; exit 1; }
  grep -q "dying (SIGKILL)" "$log" && kills=$((kills + 1))
  grep -q "leaves the job" "$log" && leaves=$((leaves + 1))
  case $RC in
    4) done_preemptions=$((done_preemptions + 1))
       # "stopped at step N ... wrote ckpt-sN-signal.h5", or, when the signal came while rank 0
       # waited for a lost trainer, "abandoned it and wrote ckpt-sN-signal.h5 (the last complete round)"
       last_step=$(grep "SIGUSR1" "$log" | grep -o "ckpt-s[0-9]*-[a-z]*\.h5" | tail -n 1 | sed 's/ckpt-s0*\([0-9][0-9]*\)-.*/\1/')
       [ -n "$last_step" ] || { tail -n 20 "$log"; echo "soak: run $run exited 4 without naming its checkpoint" >&2; exit 1; }
       prefixes[-1]="${prefixes[-1]}:$last_step"
       echo "soak: run $run (world $np${extra:+, ${extra[*]}}): preempted at step $last_step" ;;
    0 | 5) echo "soak: run $run (world $np${extra:+, ${extra[*]}}): finished (exit $RC)"; break ;;
    *) tail -n 30 "$log"; echo "soak: run $run failed with exit code $RC" >&2; exit 1 ;;
  esac
done
[ "$done_preemptions" -ge "$preemptions" ] ||
  { echo "soak: training ended after $done_preemptions preemptions, fewer than $preemptions (use more EPOCHS or SAMPLES)" >&2; exit 1; }
checks=$($py tests/tools/check_soak.py "$SAMPLES" "$EPOCHS" "${prefixes[@]}")
$py - "$work/straight.json" "$work/run$run.json" "$checks" "$done_preemptions" "$kills" "${worlds[*]}" "$leaves" "$joins" <<'PY'
import json, sys
straight, soak = (json.load(open(p)) for p in sys.argv[1:3])
checks = json.loads(sys.argv[3])
gap = 100 * (soak["test_accuracy"] - straight["test_accuracy"])
changes = int(sys.argv[4]) + int(sys.argv[5]) + int(sys.argv[7]) + int(sys.argv[8])
out = {"preemptions": int(sys.argv[4]), "trainers_killed": int(sys.argv[5]),
       "planned_leaves": int(sys.argv[7]), "live_joins": int(sys.argv[8]),
       "membership_changes": changes,
       "worlds": [int(w) for w in sys.argv[6].split()], **checks,
       "test_accuracy": soak["test_accuracy"], "uninterrupted_test_accuracy": straight["test_accuracy"],
       "accuracy_gap_points": round(gap, 3), "steps": soak["steps"], "uninterrupted_steps": straight["steps"]}
print(json.dumps(out))
assert soak["steps"] == straight["steps"], "the soak ended at another step than the uninterrupted run"
assert abs(gap) <= 0.5, f"accuracy {gap:+.2f} points from the uninterrupted run (limit 0.5)"
PY
echo "soak: passed ($work)"
