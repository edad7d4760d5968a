#!/usr/bin/env bash
# Supervised restarts for launchers without dynamic processes (README "Machines that come and go",
# DESIGN §7 "Supervised restart"): runs the job on the hosts of an Open MPI hostfile and, when the
# file changes, asks the job to checkpoint and stop (SIGUSR1 to mpirun, which forwards it to every
# rank: rank 0 finishes the round, writes ckpt-*-signal.h5 and exits 4), then starts it again on
# the new hosts with --resume auto. The global batch and every sample's once-per-epoch use carry
# over, as for any resume on another world size.
#
#   scripts/elastic.sh [--poll S] [--settle S] HOSTFILE [mpirun options] hetrain train ...
#
# The world size is the hostfile's slot count (a line "host slots=N" counts N, a bare host 1;
# rank 0 takes the first slot). --resume auto is appended to the hetrain command, so give it the
# --checkpoint-dir every run shares. --poll: seconds between looks at the file (default 2).
# --settle: seconds after a start before a change is acted on (default 15): a rank that has not
# yet installed hetrain's handlers would die of SIGUSR1. A change is never lost, only deferred.
# SIGTERM/SIGINT/SIGUSR1 to this script stop the job the same way (checkpoint, exit 4).
# Exit code: the last job's (rank 0's, through $HETRAIN_EXIT_CODE_FILE as scripts/mpirun-hetrain.sh
# does, so that --enable-recovery's always-0 mpirun does not hide it); 2 for a bad hostfile.
set -uo pipefail
poll=2 settle=15
while [ $# -gt 0 ]; do
  case $1 in
    --poll) poll=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--poll S] [--settle S] HOSTFILE [mpirun options] hetrain train ..." >&2; exit 2; }
hostfile=$1
shift
: "${MPIRUN:=mpirun}"
say() { echo "elastic: $*" >&2; }
slots() { # the hostfile's slot count; empty when it cannot be read or names no slot
  [ -r "$hostfile" ] || return 0
  awk '{ sub(/#.*/, "") } NF == 0 { next }
       { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=[0-9]+$/) n = substr($i, 7) + 0; total += n }
       END { if (total > 0) print total }' "$hostfile"
}
fingerprint() { cksum <"$hostfile" 2>/dev/null || echo missing; }
code_file=$(mktemp "${TMPDIR:-/tmp}/hetrain-exit.XXXXXX")
job=""
stopping="" # why this script asked the job to stop: "change" or "signal"
trap 'rm -f "$code_file"' EXIT
stop_job() { # stop_job WHY: SIGUSR1 to mpirun (once), which forwards it to every rank
  [ -n "$job" ] && [ -z "$stopping" ] || return 0
  stopping=$1
  kill -USR1 "$job" 2>/dev/null || true
}
trap 'say "signalled: asking the job to checkpoint and stop"; stop_job signal' TERM INT USR1
restarts=0
while :; do
  np=$(slots)
  if [ -z "$np" ] || [ "$np" -lt 2 ]; then
    say "$hostfile: no usable hostfile (${np:-no} slots; needs 2, rank 0 and a trainer)"
    exit 2
  fi
  seen=$(fingerprint)
  say "starting on $np slots of $hostfile$([ $restarts -gt 0 ] && echo " (restart $restarts, --resume auto)")"
  : >"$code_file"
  "$MPIRUN" --hostfile "$hostfile" -np "$np" -x HETRAIN_EXIT_CODE_FILE="$code_file" "$@" \
    --resume auto &
  job=$! stopping="" started=$SECONDS
  while kill -0 "$job" 2>/dev/null; do
    sleep "$poll" &
    wait $! 2>/dev/null # a trap runs at once, not after the sleep
    if [ -z "$stopping" ] && [ "$(fingerprint)" != "$seen" ] && [ $((SECONDS - started)) -ge "$settle" ]; then
      changed_at=$SECONDS
      say "$hostfile changed ($np slots -> $(slots || true)): asking the job to checkpoint and stop"
      stop_job change
    fi
  done
  rc=0
  wait "$job" || rc=$?
  # --enable-recovery: mpirun exits 0 whatever happened; rank 0's own code is in the file.
  [ "$rc" -eq 0 ] && [ -s "$code_file" ] && rc=$(cat "$code_file")
  job=""
  if [ "$stopping" = change ] && [ "$rc" -eq 4 ]; then
    restarts=$((restarts + 1))
    say "the job stopped $((SECONDS - changed_at)) s after the change; restarting"
    continue
  fi
  [ "$stopping" = change ] && say "the job ended with $rc before it could stop for the change"
  exit "$rc"
done
