# shellcheck shell=bash
# Sourced by every tests/e2e/mpi/<case>.sh (ctest label mpi, one case per script). Sets strict
# mode, a work folder removed on exit (with any background job still running), the paths and
# helpers:
#   $HETRAIN $MPIEXEC $DATA   from the environment (tests/CMakeLists.txt passes them; and
#                             $FINALIZE_DEADLINE, the helper binary of mpi.finalize_deadline)
#   $train $test_set          the prepared Fashion-MNIST files (a case skips when one is missing)
#   $tests $repo $work $py    tests/, the repository root, the work folder, the python to use
#   $tools                    tests/tools/: the checkers and generators the cases run
#   mpi NP ARGS...            mpiexec, oversubscribed, ranks yielding when idle
#   recovery_mpi NP ARGS...   the same through scripts/mpirun-hetrain.sh --enable-recovery
#   compare ARGS...           tests/tools/compare_checkpoints.py (see there: --exact, --optimizer,
#                             RTOL)
#   drift REF OTHER           prints the worst relative L2 difference of the parameters (a number)
#   skip REASON / fail REASON exit 77 (ctest: skipped) / exit 1, with the reason printed
#   need_cpus N WHY, need_data [FILE...]   skip unless the machine has them
#   expect_rc GOT WANT LOG    fail with the log's tail unless GOT == WANT
#   summary_get FILE EXPR     prints EXPR, a python expression on s = the --summary-json FILE
#   summary_check FILE EXPR WHY   fails with WHY unless EXPR (as above) is true
#   rounds_done METRICS       round records in a --metrics file so far
#   rank_pid RANK             the pid of the running hetrain train of world rank RANK
#
# Facts of a run (speeds, shares, plans, verdicts, who was lost or out) are checked in the summary
# (--summary-json, DESIGN §8), not in the log: log lines are worded for people and change. A case
# reads the log only for what a user must see there (a message naming the flag or the rank waited
# for), or to know when a fault has happened, and says so where it does.
# Numbers: training is chaotic. A rounding difference of 1e-7 (another summation order, CPU or BLAS
# kernel) stays near 1e-7 for dozens of steps, then grows (measured: one process, micro-batch 16 vs
# 32, mlp, momentum lr 0.05: 2.6e-7 at step 100, 5e-2 at step 235). So a comparison either is
# bit-exact (the same computation: compare --exact), or compares at step <= 20 where no drift has
# started (tolerance $early_rtol), or measures the drift in the same test (mpi.wire_dtype). Not
# for the cnn with Adam: its splits differ by 1e-4 within 4 steps (see mpi.signal).
set -euo pipefail
: "${HETRAIN:?set HETRAIN to the hetrain binary}" "${MPIEXEC:?set MPIEXEC to mpiexec}"
: "${DATA:?set DATA to the data folder (scripts/prepare-data.sh makes it)}"
case_name=$(basename "$0" .sh)
tests=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
repo=$(dirname "$tests")
tools=$tests/tools
# The python that reads checkpoints: HETRAIN_PYTHON, else Debian's (python3-h5py), else the one on
# PATH, whichever first has h5py and numpy: a GPU machine's /usr/bin/python3 may lack h5py, and
# then every case that reads a checkpoint would fail.
py=""
for candidate in ${HETRAIN_PYTHON:-} /usr/bin/python3 python3; do
  if "$candidate" -c 'import h5py, numpy' 2>/dev/null; then py=$(command -v "$candidate"); break; fi
done
train=$DATA/fashion-mnist-train.h5
test_set=$DATA/fashion-mnist-test.h5
# Relative L2 difference allowed between two runs that are the same maths summed in another order,
# compared at step <= 20: measured there 5e-8 .. 1.3e-7 (mlp, momentum) and 2.7e-7 (mlp, Adam
# state), each case says its own; 1e-5 is 35x the largest, while rounding every gradient upload to
# bf16 (an error of at most 2^-9 per element) moves the parameters 3e-4 .. 1e-3 by step 10
# (mpi.wire_dtype), so much smaller real errors still fail.
early_rtol=1e-5
# Seconds a job may take to end once rank 0 has decided to end it (its checkpoint written, then
# MPI_Abort or the finalize), on top of the bounds the flags give: measured 1.3-2.4 s, and once
# 7.2 s with a busy loop on each of the VM's 2 cores. A hang is still caught: without rank 0 the
# trainers would end only on their own deadline, 2x --straggler-timeout + 60 s.
job_end_margin=10

skip() { echo "SKIPPED (mpi.$case_name): $*"; exit 77; }
fail() { echo "FAIL (mpi.$case_name): $*" >&2; exit 1; }
need_cpus() { # need_cpus N WHY
  local have
  have=$(nproc)
  [ "$have" -ge "$1" ] || skip "needs $1 CPUs ($2); this machine gives $have"
}
need_data() { # need_data [FILE...]: the training set and these
  local f
  for f in "$train" "$@"; do
    [ -f "$f" ] || skip "missing $f: run scripts/prepare-data.sh"
  done
}
[ -x "$HETRAIN" ] || fail "HETRAIN=$HETRAIN is not an executable"
command -v "$MPIEXEC" >/dev/null 2>&1 || skip "no mpiexec ($MPIEXEC)"
[ -n "$py" ] || skip "no python with h5py and numpy (install python3-h5py, or set HETRAIN_PYTHON)"
need_data

work=$(mktemp -d)
cleanup() {
  local rc=$? p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
  return $rc
}
trap cleanup EXIT
# Open MPI refuses to run as root unless told that it is deliberate (containers, CI).
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

mpi() { local np=$1; shift; "$MPIEXEC" --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 "$@"; }
recovery_mpi() {
  local np=$1; shift
  MPIRUN=$MPIEXEC "$repo/scripts/mpirun-hetrain.sh" --enable-recovery --oversubscribe -np "$np" \
    --mca mpi_yield_when_idle 1 "$@"
}
compare() { $py "$tools/compare_checkpoints.py" "$@"; }
drift() { $py "$tools/compare_checkpoints.py" --print-worst "$@"; }
expect_rc() { # expect_rc GOT WANT LOG
  [ "$1" -eq "$2" ] || { tail -n 30 "$3" >&2; fail "exit code $1, expected $2 (log above)"; }
}
# In EXPR: s (the summary), trainer(RANK) and admission(RANK) (its entry of s["trainers"] and
# s["admission"] by world rank).
summary_get() { # summary_get FILE EXPR
  $py - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
def trainer(rank): return {t["rank"]: t for t in s["trainers"]}[rank]
def admission(rank): return {a["rank"]: a for a in s["admission"]}[rank]
print(eval(sys.argv[2]))
PY
}
summary_check() { # summary_check FILE EXPR WHY
  local got
  got=$(summary_get "$1" "$2") || fail "$3 (summary $1: $2 raised)"
  [ "$got" = True ] || fail "$3 (summary $1: $2 is $got)"
  echo "summary: $2"
}
# rounds_done METRICS: the round records in a --metrics file so far (0 before the file exists).
rounds_done() { local n; n=$(grep -c '"type":"round"' "$1" 2>/dev/null); echo "${n:-0}"; }
# rank_pid RANK: the pid of the running `hetrain train` of world rank RANK (Open MPI gives each
# process its rank in OMPI_COMM_WORLD_RANK); nothing when there is none.
rank_pid() {
  local p
  for p in $(pgrep -f "$HETRAIN train --data"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$p"
      return
    fi
  done
}
# The live-join cases (mpi.live_join, lan.live_join): a job writing $work/log, $work/m.jsonl and
# $work/samples.rank<R>, joiners writing $work/join<N>.log.
# wait_for WHAT CONDITION...: up to 60 s (not a check: what follows checks); on a timeout the
# logs' ends and a failure naming WHAT.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 1200); do "$@" && return 0; sleep 0.05; done
  tail -n 20 "$work/log" "$work"/join*.log 2>/dev/null
  fail "no $what within 60 s"
}
rounds_from() { [ "$(rounds_done "$work/m.jsonl")" -ge "$1" ]; }
worked() { # worked RANK N: the trainer's sample log has N rounds
  [ "$(cut -d' ' -f2 "$work/samples.rank$1" 2>/dev/null | sort -u | wc -l)" -ge "$2" ]
}
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; } # seconds since $1
# joiner_pid: the newest `hetrain join` process (the process, not its mpirun); nothing if none.
joiner_pid() { pgrep -n -f "^$HETRAIN join"; }
# step_ckpt DIR STEP: the path of DIR's step checkpoint at STEP (need not exist).
step_ckpt() { printf '%s/ckpt-s%08d-step.h5' "$1" "$2"; }
newest() { find "$1" -name 'ckpt-*-epoch.h5' | sort | tail -n 1; }
# seconds since the epoch with fractions, and an elapsed-time check against a derived bound
now() { date +%s.%N; }
within() { # within START LIMIT WHAT: fails unless now - START < LIMIT
  local took
  took=$($py -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$1")
  echo "$3: took $took s (bound $2 s)"
  $py -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$took" "$2" ||
    fail "$3 took $took s, the bound is $2 s"
}
