# shellcheck shell=bash
# Sourced by slurm/train-*.sbatch; not run on its own. It
#   1. picks the MPI launcher (hetrain_pick_launcher) and logs the choice,
#   2. runs hetrain under it in the background, forwarding SIGUSR1 from the batch shell
#      (hetrain_run), and
#   3. requeues the job when hetrain stopped on a signal (exit 4) so that the next run continues
#      from the checkpoint with --resume auto (hetrain_finish).
#
# Launch mode (HETRAIN_LAUNCH, default auto):
#   srun    `srun --mpi=pmix`: SLURM starts the ranks itself; one MPI_COMM_WORLD across every
#           task (and across the components of a heterogeneous job). Needs SLURM's pmix plugin
#           and an Open MPI that speaks PMIx (Debian 12's do).
#   mpirun  Open MPI's mpirun inside the allocation: it reads the nodes and the task count from
#           SLURM and starts its daemons with srun. Cannot span the components of a hetjob.
#   auto    srun when `srun --mpi=list` lists pmix, else mpirun. Only pmix is tried: with
#           Debian's Open MPI 4.1 `--mpi=pmi2` and `--mpi=none` fail ("OMPI was not built with
#           SLURM's PMI support").
#
# Signals: `#SBATCH --signal=B:USR1@120` makes SLURM send SIGUSR1 to the batch shell alone, 120 s
# before the time limit (`scancel --signal=USR1 --batch JOB` does the same by hand). A shell
# running a command in the foreground handles a trapped signal only when the command ends, so
# the launcher runs in the background and the shell `wait`s; the trap then sends SIGUSR1 to the
# launcher process, and both launchers pass it on to every rank (srun forwards USR1 to its
# tasks; mpirun forwards USR1 to every rank). Rank 0 then checkpoints (ckpt-*-signal.h5) and
# every rank exits, rank 0 with code 4. Why not `scancel --signal=USR1 --full` or signalling the
# step with scancel: --full would also hit this shell, and `kill` needs no round trip to
# slurmctld; the launcher is our own child, so its pid is at hand.
#
# Exit code: rank 0 writes its own exit code to $HETRAIN_EXIT_CODE_FILE (a file in /tmp of the
# batch node, where rank 0 runs: it is the first task of the first node, or of component 0); that
# code is the job's, so 3 (peer lost) or 5 (completed without a lost trainer) are not masked by
# what the launcher returns.

hetrain_log() { echo "hetrain-slurm $(date '+%F %T'): $*"; }
hetrain_die() { echo "hetrain-slurm: $1" >&2; exit "${2:-1}"; }

# Sets HETRAIN_LAUNCH to srun or mpirun and logs which one and why.
hetrain_pick_launcher() {
  local want=${HETRAIN_LAUNCH:-auto} why
  HETRAIN_LAUNCH_ASKED=$want
  case $want in
    srun) why="HETRAIN_LAUNCH=srun" ;;
    mpirun) why="HETRAIN_LAUNCH=mpirun" ;;
    auto)
      if srun --mpi=list 2>&1 | grep -qw pmix; then
        want=srun why="srun --mpi=list offers pmix"
      else
        want=mpirun why="srun --mpi=list offers no pmix"
      fi ;;
    *) hetrain_die "HETRAIN_LAUNCH must be auto, srun or mpirun, not '$want'" 2 ;;
  esac
  if [ "$want" = mpirun ]; then
    command -v mpirun >/dev/null || hetrain_die "launch mode mpirun ($why) but no mpirun in PATH"
    hetrain_log "launch mode: mpirun inside the allocation ($why)"
  else
    hetrain_log "launch mode: srun --mpi=pmix ($why)"
  fi
  HETRAIN_LAUNCH=$want
}

# --on-trainer-loss continue among hetrain's arguments: the survivors of a lost trainer must keep
# running. srun cannot do that: with SLURM 22.05's mpi/pmix plugin the step is cancelled about a
# second after a task dies, whatever -W 0, --kill-on-bad-exit=0 or --no-kill say (measured on the
# local SLURM: "mpi/pmix_v4: _errhandler ... status = -61", then "STEP ... CANCELLED"). mpirun
# --enable-recovery inside the allocation keeps them, so the launch mode becomes mpirun (an
# explicit HETRAIN_LAUNCH=srun, or a layout only srun can start, is refused with the reason).
_hetrain_continue=0
# hetrain_need_mpirun WHAT WHY MODE: WHAT (an option or variable) needs mpirun, because WHY. A
# layout only srun can start, or an explicit HETRAIN_LAUNCH=srun, is refused (exit 2) with the
# reason; the auto choice of srun becomes mpirun, logged as `launch mode: MODE instead of srun`.
hetrain_need_mpirun() {
  local what=$1 why=$2 mode=$3
  [ "${MPIRUN_ARGS+set}" = set ] ||
    hetrain_die "$what needs $mode, but this job layout can only be started by srun ($why)" 2
  [ "$HETRAIN_LAUNCH" = srun ] || return 0
  [ "${HETRAIN_LAUNCH_ASKED:-auto}" = srun ] &&
    hetrain_die "HETRAIN_LAUNCH=srun with $what: $why; use HETRAIN_LAUNCH=auto or mpirun" 2
  command -v mpirun >/dev/null || hetrain_die "$what needs mpirun ($why), but there is no mpirun in PATH" 2
  HETRAIN_LAUNCH=mpirun
  hetrain_log "launch mode: $mode instead of srun ($what: $why)"
}
hetrain_launcher_for_continue() {
  local prev="" a
  for a in "$@"; do
    if [ "$a" = --on-trainer-loss=continue ] || { [ "$prev" = --on-trainer-loss ] && [ "$a" = continue ]; }; then
      _hetrain_continue=1
    fi
    prev=$a
  done
  [ "$_hetrain_continue" = 1 ] || return 0
  hetrain_need_mpirun "--on-trainer-loss continue" "srun --mpi=pmix cancels the step when one task dies" \
    "mpirun --enable-recovery"
}

# JOIN_FILE set: trainers may join the running job (README "Machines that come and go",
# slurm/join-node.sbatch). Joining needs Open MPI's rendezvous server and mpirun: this starts
# `ompi-server` here on the batch node (its address in $JOIN_FILE.uri, which joiners read; it
# listens on every interface, so nodes that reach this one reach it), gives mpirun its address
# and hetrain `--accept-joins $JOIN_FILE`, and stops the server when this script ends. The
# launch mode becomes mpirun: connect/accept across launches is untried under srun --mpi=pmix.
# Call it after MPIRUN_ARGS and HETRAIN_ARGS are set.
hetrain_accept_joins() {
  [ -n "${JOIN_FILE:-}" ] || return 0
  command -v ompi-server >/dev/null ||
    hetrain_die "JOIN_FILE is set but there is no ompi-server in PATH (Open MPI's rendezvous server)" 2
  hetrain_need_mpirun JOIN_FILE "joins need mpirun --ompi-server" mpirun
  mkdir -p "$(dirname "$JOIN_FILE")" || hetrain_die "cannot create the folder of JOIN_FILE=$JOIN_FILE" 2
  rm -f "$JOIN_FILE" "$JOIN_FILE.uri"
  ompi-server --no-daemonize --report-uri "$JOIN_FILE.uri" >"$JOIN_FILE.ompi-server.log" 2>&1 &
  _hetrain_ompi_server=$!
  trap '[ -n "$_hetrain_ompi_server" ] && kill "$_hetrain_ompi_server" 2>/dev/null' EXIT
  local _
  for _ in $(seq 100); do [ -s "$JOIN_FILE.uri" ] && break; sleep 0.1; done
  [ -s "$JOIN_FILE.uri" ] || hetrain_die "ompi-server wrote no address in 10 s (see $JOIN_FILE.ompi-server.log)"
  MPIRUN_ARGS+=(--ompi-server "file:$JOIN_FILE.uri")
  HETRAIN_ARGS+=(--accept-joins "$JOIN_FILE")
  _hetrain_joins=1
  hetrain_log "accepting joins: sbatch slurm/join-node.sbatch $JOIN_FILE (ompi-server pid $_hetrain_ompi_server)"
}
_hetrain_ompi_server="" _hetrain_joins=0

# hetrain_run -- hetrain train ...
# Runs the command under the launcher picked above, with the launcher options the calling script
# put in the arrays SRUN_ARGS and MPIRUN_ARGS (MPIRUN_ARGS unset: this layout cannot use
# mpirun) and the number of ranks in HETRAIN_NP. Sets HETRAIN_RC to rank 0's exit code.
hetrain_run() {
  [ "${1:-}" = -- ] && shift
  local launcher=()
  [ -z "${JOIN_FILE:-}" ] || [ "$_hetrain_joins" = 1 ] ||
    hetrain_die "JOIN_FILE is set, but only slurm/train-node.sbatch takes joiners" 2
  hetrain_launcher_for_continue "$@"
  if [ "$HETRAIN_LAUNCH" = srun ]; then
    launcher=(srun --mpi=pmix "${SRUN_ARGS[@]}")
    # srun --mpi=pmix sets PMIX_RANK and SLURM_STEP_NUM_TASKS but no *_SIZE variable; hetrain
    # reads the world size from SLURM_STEP_NUM_TASKS then (src/cli/cli.cpp, launched_world_size).
  else
    [ "${MPIRUN_ARGS+set}" = set ] ||
      hetrain_die "this job layout needs srun --mpi=pmix; mpirun cannot span it (HETRAIN_LAUNCH=$HETRAIN_LAUNCH)"
    # Root only matters on test machines; production jobs run as users.
    [ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    launcher=(mpirun -x HETRAIN_EXIT_CODE_FILE "${MPIRUN_ARGS[@]}")
    # --on-trainer-loss continue: mpirun must keep the survivors when a trainer dies.
    [ "$_hetrain_continue" = 1 ] && launcher+=(--enable-recovery)
  fi
  HETRAIN_EXIT_CODE_FILE=$(mktemp /tmp/hetrain-exit."$SLURM_JOB_ID".XXXXXX)
  export HETRAIN_EXIT_CODE_FILE
  hetrain_log "running $HETRAIN_NP ranks: ${launcher[*]} $*"
  "${launcher[@]}" "$@" &
  _hetrain_child=$!
  if [ "$_hetrain_usr1" = 1 ]; then # USR1 came while we were starting it
    kill -USR1 "$_hetrain_child" 2>/dev/null
  fi
  hetrain_launcher_watchdog "$_hetrain_child" &
  local watchdog=$!
  # A trapped signal interrupts `wait` (status > 128): wait again until the launcher has ended,
  # then once more for its real status (bash keeps it).
  while kill -0 "$_hetrain_child" 2>/dev/null; do wait "$_hetrain_child"; done
  wait "$_hetrain_child"
  local launcher_rc=$?
  pkill -P "$watchdog" 2>/dev/null # its sleep
  kill "$watchdog" 2>/dev/null
  HETRAIN_RC=$launcher_rc
  if [ -s "$HETRAIN_EXIT_CODE_FILE" ]; then
    HETRAIN_RC=$(cat "$HETRAIN_EXIT_CODE_FILE")
  elif [ "$launcher_rc" -eq 0 ]; then
    hetrain_log "the launcher exited 0 but rank 0 recorded no exit code (did it run?)"
    HETRAIN_RC=1
  fi
  rm -f "$HETRAIN_EXIT_CODE_FILE"
  hetrain_log "hetrain exited with code $HETRAIN_RC (launcher: $launcher_rc)"
}

# hetrain_launcher_watchdog PID: ends the launcher when it outlives rank 0 by
# HETRAIN_LAUNCHER_GRACE seconds (default 20). Seen twice on the local SLURM (22.05.8): `srun
# --mpi=pmix --het-group=0-1` stayed in a futex wait after both components' tasks had exited and
# slurmd had logged "done with job" for each, so the job never ended. Rank 0's exit code file,
# written as it exits, says that the training is over.
hetrain_launcher_watchdog() {
  local pid=$1
  while kill -0 "$pid" 2>/dev/null; do
    if [ -s "$HETRAIN_EXIT_CODE_FILE" ]; then
      sleep "${HETRAIN_LAUNCHER_GRACE:-20}"
      kill -0 "$pid" 2>/dev/null || return 0
      hetrain_log "the launcher (pid $pid) is still running ${HETRAIN_LAUNCHER_GRACE:-20} s after rank 0 exited: ending it"
      kill -TERM "$pid" 2>/dev/null
      return 0
    fi
    sleep 1
  done
}

# hetrain_finish: exit with hetrain's code, or requeue the job when it was stopped by a signal.
# Exit codes: 0 ok, 2 bad input, 3 peer lost, 4 stopped by signal, 5 completed without lost
# trainers. On 4 (SIGUSR1 before the time limit, or SIGTERM on preemption) the job is put back
# in the queue with `scontrol requeue` (needs #SBATCH --requeue); it keeps its job id, so CKPT
# is the same and --resume auto picks up ckpt-*-signal.h5. MAX_REQUEUES (default 20) bounds the
# loop. `scontrol requeue` ends this run (SLURM kills the batch step).
hetrain_finish() {
  if [ "$HETRAIN_RC" -eq 4 ]; then
    local restarts=${SLURM_RESTART_COUNT:-0}
    if [ "$restarts" -ge "${MAX_REQUEUES:-20}" ]; then
      hetrain_log "stopped by a signal, but already requeued $restarts times (MAX_REQUEUES); not again"
      exit 4
    fi
    hetrain_log "stopped by a signal with a checkpoint in $CKPT: scontrol requeue $SLURM_JOB_ID"
    if scontrol requeue "$SLURM_JOB_ID"; then
      sleep 30 # SLURM ends this run now; do not report an exit code of our own first
    else
      hetrain_log "scontrol requeue failed (job not requeueable?); resubmit with CKPT=$CKPT to continue"
    fi
    exit 4
  fi
  exit "$HETRAIN_RC"
}

# Until the launcher runs, a SIGUSR1 is only remembered (and then the launch is skipped).
_hetrain_child="" _hetrain_usr1=0
_hetrain_on_usr1() {
  _hetrain_usr1=1
  if [ -n "$_hetrain_child" ]; then
    hetrain_log "SIGUSR1: forwarding it to the launcher (pid $_hetrain_child): hetrain checkpoints and stops"
    kill -USR1 "$_hetrain_child" 2>/dev/null
  else
    hetrain_log "SIGUSR1 before the launch"
  fi
}
trap _hetrain_on_usr1 USR1

# hetrain_common_args: the hetrain options every script passes; sets HETRAIN_ARGS.
# Uses HETRAIN, DATA, TRAIN, TEST, CKPT, MODEL, EPOCHS, THREADS (see the calling script).
hetrain_common_args() {
  [ -x "$HETRAIN" ] || hetrain_die "HETRAIN=$HETRAIN is not an executable (set HETRAIN=/path/to/hetrain)" 2
  mkdir -p "$CKPT" || hetrain_die "cannot create CKPT=$CKPT" 2
  HETRAIN_ARGS=(train --data "$TRAIN" --model "$MODEL" --epochs "$EPOCHS"
                --checkpoint-dir "$CKPT" --resume auto)
  [ -n "$TEST" ] && HETRAIN_ARGS+=(--test-data "$TEST")
  [ -n "${THREADS:-}" ] && HETRAIN_ARGS+=(--threads "$THREADS")
  hetrain_log "job $SLURM_JOB_ID (run $(( ${SLURM_RESTART_COUNT:-0} + 1 ))), nodes ${SLURM_JOB_NODELIST:-?}, checkpoints in $CKPT"
  if [ "$_hetrain_usr1" = 1 ]; then
    HETRAIN_RC=4
    hetrain_log "SIGUSR1 arrived before hetrain started: nothing to checkpoint"
    hetrain_finish
  fi
}
