#!/usr/bin/env bash
# mpi.finalize_deadline: a finalize that cannot complete (rank 0 of
# tests/tools/finalize_deadline.cpp arrives $late s late) ends each waiting rank after its $deadline
# s deadline, named, with the exit code it was given; so the job ends in less than $late s (without
# the deadline the others would wait for rank 0 at least that long).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
: "${FINALIZE_DEADLINE:?set FINALIZE_DEADLINE to the finalize_deadline test binary}"
late=30 deadline=2 code=7
start=$(now)
rc=0
out=$(mpi 3 "$FINALIZE_DEADLINE" $late $deadline $code 2>&1) || rc=$?
echo "$out" | grep "MPI_Finalize"
[ "$rc" -eq $code ] || { echo "$out"; fail "exit code $rc, expected $code"; }
# The log: the helper is no training job (no summary); the message is what a user sees of it.
for r in 1 2; do
  echo "$out" | grep -q "^\[r$r .*MPI_Finalize has not returned after $deadline s.*exit code $code" ||
    { echo "$out"; fail "rank $r did not report its late finalize"; }
done
within "$start" $late "the late finalize (rank 0 arrives after $late s)"
