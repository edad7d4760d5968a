# shellcheck shell=bash
# Sourced by every tests/e2e/lan/<case>.sh (ctest label lan): hetrain across hosts simulated inside
# this machine by scripts/lan-sim.sh (network namespaces, veth pairs shaped with tbf; root only).
# Everything of tests/e2e/mpi/common.sh (strict mode, $HETRAIN $DATA $train $work $py, compare,
# skip, fail, ...), plus:
#   sim_up HOSTS RATE[,RATE...] [lan-sim up options]   makes a sim; prints nothing on success;
#                             sets $sim (its name); the sim is removed on every exit path
#   lan NP ARGS...            mpirun across $sim: --oversubscribe -np NP, ranks yield when idle
#   counters FILE             the sim's byte counters (JSON, see lan-sim.sh) into FILE
#   param_bytes SUMMARY       M, the fp32 bytes of the model's parameters, from a run's
#                             --summary-json ("parameters")
# Skipped (77) with the reason where namespaces cannot be made (not root, no tbf, ...).
# shellcheck source=../mpi/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../mpi/common.sh"
skip() { echo "SKIPPED (lan.$case_name): $*"; exit 77; }
fail() { echo "FAIL (lan.$case_name): $*" >&2; exit 1; }
lan_sim=$repo/scripts/lan-sim.sh
sims=()
lan_cleanup() {
  local rc=$? s
  for s in "${sims[@]}"; do "$lan_sim" down "$s" >/dev/null 2>&1 || true; done
  cleanup
  return $rc
}
trap lan_cleanup EXIT
# A signal (ctest's timeout, ^C) ends the script through exit, so the EXIT trap removes the sims.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

sim_up() { # sim_up HOSTS RATES [OPTIONS...]
  local hosts=$1 rates=$2 rc=0 out
  shift 2
  # Unique per test process and call: l<pid>x<count> (namespaces are <name>-h<i>).
  sim=l$$x${#sims[@]}
  sims+=("$sim")
  out=$("$lan_sim" up "$sim" --hosts "$hosts" --rate "$rates" "$@" 2>&1) || rc=$?
  [ "$rc" -ne 77 ] || skip "$(echo "$out" | tail -n 1)"
  [ "$rc" -eq 0 ] || fail "lan-sim.sh up failed (exit $rc): $out"
}
lan() {
  local np=$1
  shift
  MPIRUN=$MPIEXEC "$lan_sim" run "$sim" -- --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 \
    "$@"
}
counters() { "$lan_sim" counters "$sim" >"$1"; }
param_bytes() { # param_bytes SUMMARY: 4 x the summary's "parameters"
  local n
  n=$(summary_get "$1" 's["parameters"]') || fail "no summary with parameters: $1"
  [ "$n" -gt 0 ] || fail "$1: parameters $n"
  echo $((n * 4))
}
