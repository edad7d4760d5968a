#!/usr/bin/env bash
# SLURM tests of slurm/*.sbatch, run by ctest (label slurm) on a private SLURM started here with
# scripts/slurm-local.sh (its own folder under a mktemp dir, stopped on exit).
# Usage: slurm.sh CASE   with HETRAIN (the binary) and DATA (data folder) in the environment.
#   node    slurm/train-node.sbatch with CPU trainers (sbatch --gres=none --ntasks=3: 1 aggregator
#           + 2 trainers; mlp, 1 epoch, 4000 samples) under `sbatch --wait`: exit code 0, job
#           COMPLETED, the log names the launch mode and has the plan: line, the newest
#           checkpoint passes `hetrain inspect` at the expected step. Then the requeue path:
#           SIGUSR1 to the batch shell (scancel --signal=USR1 --batch, what #SBATCH
#           --signal=B:USR1@120 does before the time limit) once the first checkpoint exists;
#           the job checkpoints, requeues itself, and its second run resumes from the signal
#           checkpoint and completes (Restarts=1, "resuming from ...-signal.h5", final step).
#   continue  slurm/train-node.sbatch, 1 aggregator + 3 CPU trainers, --on-trainer-loss continue,
#           trainer rank 2 SIGKILLed in its 3rd round (--fault-kill-rank 2): srun would cancel the
#           step (SLURM 22.05's pmix plugin), so launch.sh switches the auto launch mode to mpirun
#           --enable-recovery; rank 0 drops the trainer and the job trains to the end: exit code 5
#           (completed without a lost trainer), the log names rank 2, the final checkpoint is at
#           step 16.
#   hetjob  slurm/train-hetjob.sbatch on two fake nodes (component 0: the aggregator on n1,
#           component 1: 2 CPU trainers on n2), one MPI job through srun --het-group; same checks.
#   preempt  a preemptible node: slurm/join-node.sbatch joins a running train-node.sbatch job
#           (JOIN_FILE) from the scavenger partition, is preempted by a job of a higher tier
#           (planned leave, the script requeues it) and joins again (see the case below).
# Exit 77 (skipped, with the reason) when SLURM cannot run here: not root, a package missing,
# daemons not starting; or when the data is missing. No numbers are compared: step counts only.
# On 2 cores: node about 1 min (its requeue waits ~10 s for SLURM to restart the job), hetjob
# about 15 s. scripts/slurm-local.sh sets cred_expire=10 (SLURM's default, 120 s, is the wait).
set -uo pipefail
case_name=${1:-}
case $case_name in node|hetjob|continue|preempt) ;; *) echo "usage: $0 node|hetjob|continue|preempt" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${HETRAIN:?set HETRAIN to the hetrain binary}" "${DATA:?set DATA to the data folder}"
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL ($case_name): $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "a private SLURM needs root here (slurmd runs as root)"
for c in slurmctld slurmd munged sbatch scontrol sinfo srun scancel squeue; do
  command -v "$c" >/dev/null 2>&1 ||
    skip "$c not found: install slurm-wlm slurmctld slurmd slurm-client munge (scripts/install-deps.sh)"
done
[ -x "$HETRAIN" ] || fail "HETRAIN=$HETRAIN is not executable"
[ -f "$DATA/fashion-mnist-train.h5" ] || skip "missing $DATA/fashion-mnist-train.h5: run scripts/prepare-data.sh"

work=$(mktemp -d /tmp/hetrain-slurm-test.XXXXXX)
chmod 711 "$work" # munged wants every folder above its socket searchable by all
export HETRAIN_SLURM_DIR=$work/slurm SLURM_CONF=$work/slurm/slurm.conf
cleanup() {
  local rc=$?
  if [ -f "$SLURM_CONF" ]; then
    scancel --user=root >/dev/null 2>&1 # our private SLURM only (SLURM_CONF)
    for _ in $(seq 40); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    "$repo/scripts/slurm-local.sh" stop >/dev/null 2>&1
  fi
  if [ "$rc" = 0 ] || [ "$rc" = 77 ]; then rm -rf "$work"; else echo "kept for a look: $work" >&2; fi
}
trap cleanup EXIT

start=(--nodes 1)
[ "$case_name" = hetjob ] && start=(--nodes 2)
[ "$case_name" = preempt ] && start=(--nodes 2 --preemption)
if ! "$repo/scripts/slurm-local.sh" start "${start[@]}" >"$work/start.log" 2>&1; then
  cat "$work/start.log"
  tail -n 5 "$work"/slurm/log/*.log 2>/dev/null
  skip "SLURM does not start on this machine (above)"
fi
echo "private SLURM up (${start[*]}) in $HETRAIN_SLURM_DIR"

# What every job gets (sbatch passes the environment on to the batch script).
export HETRAIN DATA MODEL=mlp EPOCHS=1 THREADS=1
export OMPI_MCA_mpi_yield_when_idle=1 # 3 ranks on 2 cores
# Shared memory crashes across fake nodes (hetjob); a joiner on n2 reaches the job on n1 by TCP.
case $case_name in hetjob | preempt) export OMPI_MCA_btl=self,tcp ;; esac

job_state() { scontrol show job "$1" | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2; }
newest_ckpt() { find "$1" -name 'ckpt-*.h5' | sort | tail -n 1; }
# inspect CKPT STEP: the checkpoint is valid and at global step STEP.
inspect() {
  local json step
  json=$("$HETRAIN" inspect "$1" --json) || fail "hetrain inspect $1 failed"
  step=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["global_step"])' <<<"$json")
  [ "$step" = "$2" ] || fail "$1: global_step $step, expected $2"
  echo "  hetrain inspect $(basename "$1"): valid, global_step $step"
}
# check_log LOG: the launch mode line and rank 0's plan.
check_log() {
  grep -q "launch mode:" "$1" || fail "no 'launch mode:' line in $1"
  grep -q "plan: rank 1 " "$1" || fail "no 'plan:' line in $1"
  echo "  $(grep -m1 -o 'launch mode: .*' "$1")"
  echo "  $(grep -m1 -o 'plan: .*' "$1")"
}
# submit NAME SCRIPT [sbatch options] -- [script args]: sbatch --wait; sets JOB and RC.
submit() {
  local name=$1 script=$2 opts=() t0=$SECONDS; shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  timeout 170 sbatch --wait --parsable --chdir="$work" --output="$work/$name.out" --time=5 \
    --job-name="$name" "${opts[@]}" "$script" "$@" >"$work/$name.id"
  RC=$?
  JOB=$(cut -d';' -f1 "$work/$name.id")
  echo "$name: job $JOB, sbatch --wait exit code $RC after $((SECONDS - t0)) s"
  # A job that outlived the timeout: what was still running, and where each process waited,
  # before the cleanup kills it (seen once: the step did not end after hetrain had finished).
  [ "$RC" != 124 ] || ps -eo pid,ppid,stat,etimes,wchan:24,args | grep -E "[h]etrain|[s]run" >&2
  [ "$RC" = 0 ] || { cat "$work/$name.out" >&2; fail "$name: sbatch --wait exited $RC"; }
}

# One training run: 4000 samples, global batch 256 = 16 steps.
train_once() {
  local name=$1 script=$2; shift 2
  CKPT=$work/ckpt-$name submit "$name" "$script" "$@" -- --limit-train-samples 4000 --progress-seconds 5
  [ "$(job_state "$JOB")" = COMPLETED ] || fail "$name: job state $(job_state "$JOB"), not COMPLETED"
  echo "  job state COMPLETED"
  check_log "$work/$name.out"
  inspect "$(newest_ckpt "$work/ckpt-$name")" 16
}

case $case_name in
node)
  train_once node "$repo/slurm/train-node.sbatch" --gres=none --ntasks=3

  # Requeue: 6 epochs of 60000 samples (6 x 235 = 1410 steps, ~10-20 s of training here), a
  # checkpoint every 20 steps; SIGUSR1 to the batch shell as soon as the first one exists. The
  # signal must arrive before the job ends: 98.6% of the run is left when it is sent (3 epochs
  # left a second or two on a fast machine for SLURM to pass the signal on).
  name=requeue
  epochs=6 steps_per_epoch=235 # ceil(60000 / 256)
  t0=$SECONDS
  CKPT=$work/ckpt-$name EPOCHS=$epochs sbatch --wait --parsable --chdir="$work" --output="$work/$name.out" \
    --time=5 --job-name=$name --gres=none --ntasks=3 "$repo/slurm/train-node.sbatch" \
    --checkpoint-every 20 --progress-seconds 5 >"$work/$name.id" &
  waiter=$!
  for _ in $(seq 600); do # up to 120 s
    [ -n "$(find "$work/ckpt-$name" -name 'ckpt-*.h5' 2>/dev/null)" ] && break
    kill -0 "$waiter" 2>/dev/null || break
    sleep 0.2
  done
  JOB=$(cut -d';' -f1 "$work/$name.id")
  [ -n "$(find "$work/ckpt-$name" -name 'ckpt-*.h5' 2>/dev/null)" ] ||
    { cat "$work/$name.out" >&2; fail "requeue: no checkpoint appeared"; }
  echo "requeue: job $JOB wrote $(basename "$(newest_ckpt "$work/ckpt-$name")") after $((SECONDS - t0)) s; scancel --signal=USR1 --batch $JOB"
  scancel --signal=USR1 --batch "$JOB" || fail "scancel --signal=USR1 --batch $JOB failed"
  timeout 170 tail --pid="$waiter" -f /dev/null
  wait "$waiter"
  RC=$?
  echo "requeue: sbatch --wait exit code $RC after $((SECONDS - t0)) s"
  [ "$RC" = 0 ] || { cat "$work/$name.out" >&2; fail "requeue: sbatch --wait exited $RC"; }
  info=$(scontrol show job "$JOB")
  grep -q 'JobState=COMPLETED' <<<"$info" || fail "requeue: job state $(job_state "$JOB"), not COMPLETED"
  grep -q 'Restarts=1 ' <<<"$info" || fail "requeue: $(grep -o 'Restarts=[0-9]*' <<<"$info"), expected Restarts=1"
  log=$work/$name.out
  grep -q "SIGUSR1: forwarding" "$log" || fail "requeue: the batch shell did not forward SIGUSR1"
  grep -q "scontrol requeue $JOB" "$log" || fail "requeue: the script did not requeue on exit code 4"
  grep -q "resuming from .*-signal.h5" "$log" || { cat "$log" >&2; fail "requeue: no 'resuming from ...-signal.h5'"; }
  [ "$(grep -c 'job .* (run [12]),' "$log")" = 2 ] || fail "requeue: expected two runs in $log"
  echo "  job state COMPLETED, Restarts=1"
  echo "  $(grep -m1 -o 'hetrain exited with code 4.*' "$log")"
  echo "  $(grep -m1 -o 'resuming from .*' "$log")"
  inspect "$(newest_ckpt "$work/ckpt-$name")" $((epochs * steps_per_epoch))
  ;;
continue)
  name=continue t0=$SECONDS
  CKPT=$work/ckpt-$name timeout 170 sbatch --wait --parsable --chdir="$work" --output="$work/$name.out" \
    --time=5 --job-name=$name --gres=none --ntasks=4 "$repo/slurm/train-node.sbatch" \
    --limit-train-samples 4000 --progress-seconds 5 --on-trainer-loss continue \
    --straggler-timeout 4 --fault-kill-rank 2 >"$work/$name.id"
  RC=$?
  JOB=$(cut -d';' -f1 "$work/$name.id")
  log=$work/$name.out
  echo "$name: job $JOB, sbatch --wait exit code $RC after $((SECONDS - t0)) s"
  grep -E "launch mode|running 4 ranks|dying|error: lost|re-plan|completed without|exited with" "$log" |
    cut -c1-220
  [ "$RC" = 5 ] || { cat "$log" >&2; fail "$name: exit code $RC, expected 5 (completed without a lost trainer)"; }
  grep -q "launch mode: mpirun --enable-recovery instead of srun" "$log" ||
    fail "$name: the launch mode did not switch to mpirun --enable-recovery"
  grep -q "running 4 ranks: mpirun .*--enable-recovery" "$log" || fail "$name: mpirun ran without --enable-recovery"
  grep -q "dying (SIGKILL)" "$log" || fail "$name: trainer rank 2 did not die"
  grep -q "completed without 1 lost trainer(s): rank 2 " "$log" || fail "$name: rank 0 did not name the lost rank 2"
  inspect "$(newest_ckpt "$work/ckpt-$name")" 16
  ;;
preempt)
  # A preemptible node (README "SLURM", preemptible nodes): the job (1 aggregator + 1 trainer)
  # runs on n1 in debug, which is never preempted, with JOIN_FILE; n2 is in scavenger and owner.
  #  1. once round 2 is done, slurm/join-node.sbatch in scavenger on n2 joins the job (rank 2);
  #  2. once it has worked 2 rounds, a job in owner takes n2's CPUs: SLURM preempts the joiner,
  #     whose `hetrain join` gets SIGTERM in its step and leaves (planned leave); the script
  #     requeues its job;
  #  3. when the owner job has ended, the requeued joiner runs again on n2 and joins (rank 3).
  # Checked: the job COMPLETED with exit 0; the summary's membership_changes are joined 2, left
  # 2, joined 3; every sample used once per epoch (the 3 trainers' sample logs); the joiner's job
  # ran twice (Restarts=1) and COMPLETED, its first run left after the preemption. About 60 s.
  name=preempt
  export JOIN_FILE=$work/join/join.json
  # 40 rounds of 4096 samples; rank 0 sleeps 1 s in every round's checkpoint
  # (--fault-slow-checkpoint, a slow disk), so that the job outlasts a join, a preemption, a
  # requeue (SLURM holds a requeued job about 10 s) and a join on any CPU, without using it. The
  # rounds' compute keeps the joiner in the plan (with rounds of 0.03 s its upload did not pay).
  OMPI_MCA_ras=^slurm OMPI_MCA_plm=rsh TEST="" CKPT=$work/ckpt-$name EPOCHS=4 \
    sbatch --parsable --chdir="$work" --output="$work/$name.out" --time=5 --job-name=$name -p debug -w n1 --gres=none --ntasks=2 "$repo/slurm/train-node.sbatch" \
    --global-batch 4096 --micro-batch 16 --limit-train-samples 40960 --checkpoint-every 1 \
    --fault-slow-checkpoint 1 --progress-seconds 1000 --metrics "$work/m.jsonl" \
    --debug-sample-log "$work/samples" --summary-json "$work/s.json" >"$work/$name.id" ||
    fail "sbatch of the job failed"
  JOB=$(cut -d';' -f1 "$work/$name.id")
  unset JOIN_FILE
  rounds_from() { local n; n=$(grep -c '"type":"round"' "$work/m.jsonl" 2>/dev/null); [ "${n:-0}" -ge "$1" ]; }
  worked() { [ "$(cut -d' ' -f2 "$work/samples.rank$1" 2>/dev/null | sort -u | wc -l)" -ge "$2" ]; }
  wait_for() { # wait_for WHAT CONDITION...: up to 90 s
    local what=$1
    shift
    for _ in $(seq 900); do "$@" && return 0; sleep 0.1; done
    tail -n 20 "$work/$name.out" "$work/join.out" 2>/dev/null >&2
    fail "no $what within 90 s"
  }
  t0=$SECONDS
  wait_for "round 2 of the job" rounds_from 2
  sbatch --parsable --chdir="$work" --output="$work/join.out" --time=5 -p scavenger -w n2 \
    "$repo/slurm/join-node.sbatch" "$work/join/join.json" --threads 1 >"$work/join.id" ||
    fail "sbatch of the joiner failed"
  joiner=$(cut -d';' -f1 "$work/join.id")
  wait_for "2 rounds of the joiner (rank 2)" worked 2 2
  echo "joiner (job $joiner) trains as rank 2 after $((SECONDS - t0)) s; the owner takes n2"
  sbatch --parsable --chdir="$work" --output="$work/owner.out" --time=5 -p owner -w n2 -n 2 \
    --wrap "sleep 2" >/dev/null || fail "sbatch of the owner's job failed"
  wait_for "the joiner's requeue" grep -q "preempted at .*scontrol requeue" "$work/join.out"
  echo "joiner preempted and requeued after $((SECONDS - t0)) s"
  wait_for "the joiner back (rank 3)" worked 3 1
  echo "joiner back as rank 3 after $((SECONDS - t0)) s"
  for _ in $(seq 900); do # the job's and the joiner's end (not a check: what follows checks)
    case "$(job_state "$JOB") $(job_state "$joiner")" in COMPLETED\ COMPLETED | *FAIL* | *CANCEL*) break ;; esac
    sleep 0.1
  done
  grep -E "launch mode|accepting joins|joined|leaves the job|left the job" "$work/$name.out" | cut -c1-200
  grep -E "hetrain-join|CANCELLED" "$work/join.out" | cut -c1-200
  [ "$(job_state "$JOB")" = COMPLETED ] || { cat "$work/$name.out" >&2; fail "job state $(job_state "$JOB"), not COMPLETED"; }
  [ "$(job_state "$joiner")" = COMPLETED ] || { cat "$work/join.out" >&2; fail "joiner's state $(job_state "$joiner"), not COMPLETED"; }
  scontrol show job "$joiner" | grep -q 'Restarts=1 ' || fail "the joiner's job did not run twice (Restarts=1)"
  [ "$(grep -c 'hetrain join exited with code 0' "$work/join.out")" = 2 ] ||
    fail "the joiner's two runs did not both exit 0"
  python3 - "$work/s.json" <<'PY' || fail "the summary does not name the join, the leave and the join again"
import json, sys
s = json.load(open(sys.argv[1]))
changes = [(c["change"], c["rank"]) for c in s["membership_changes"]]
print("  membership_changes:", changes)
assert changes == [("joined", 2), ("left", 2), ("joined", 3)], changes
PY
  python3 "$repo/tests/tools/check_samples.py" "$work/samples" 40960 4 3 ||
    fail "a sample was not used exactly once per epoch"
  ;;
hetjob)
  # Command-line options: component 0's before ':', component 1's after (overriding the GPU
  # template: no gres, one node with 2 CPU trainers).
  train_once hetjob "$repo/slurm/train-hetjob.sbatch" --cpus-per-task=1 : --gres=none --nodes=1 \
    --ntasks-per-node=2
  grep -q "running 3 ranks: srun --mpi=pmix --het-group=0-1" "$work/hetjob.out" ||
    fail "hetjob: not launched as one srun --het-group=0-1 step"
  echo "  $(grep -m1 -o 'component 0: .*' "$work/hetjob.out"); $(grep -m1 -o 'component 1: .*' "$work/hetjob.out")"
  ;;
esac
echo "PASS slurm.$case_name"
