#!/usr/bin/env bash
# Every option that `hetrain train --help` lists must be documented for users: it has to appear,
# as a whole option name, in README.md or in docs/*.md. Run by ctest (label docs):
#
#   tests/arch/check_docs_options.sh HETRAIN REPO_ROOT
#
# Exit 0: all documented; 1: some are not (each is listed), or the help could not be read; 2: usage.
# Options hidden from --help (the testing-only --fault-* group) are not checked here; docs/testing.md
# documents them.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 HETRAIN REPO_ROOT" >&2
  exit 2
fi
hetrain=$1
root=$2
if [ ! -f "$root/README.md" ]; then
  echo "check_docs_options: $root/README.md not found (is $root the repository root?)" >&2
  exit 2
fi

if ! help=$("$hetrain" train --help 2>&1); then
  echo "check_docs_options: '$hetrain train --help' failed:" >&2
  printf '%s\n' "$help" >&2
  exit 1
fi

# Option names stand at the start of a help line ("  --data TEXT ...", "  -h,--help ..."). Names
# inside descriptions are skipped: they include other programs' flags (mpirun --enable-recovery).
mapfile -t options < <(printf '%s\n' "$help" |
  sed -nE 's/^[[:space:]]*(-[[:alnum:]],)?(--[[:alnum:]][[:alnum:]-]*).*/\2/p' | sort -u)
if [ "${#options[@]}" -eq 0 ]; then
  # A changed help format must not make the check pass with nothing checked.
  echo "check_docs_options: found no options in '$hetrain train --help':" >&2
  printf '%s\n' "$help" >&2
  exit 1
fi

shopt -s nullglob
docs=("$root/README.md" "$root"/docs/*.md)
missing=()
for option in "${options[@]}"; do
  # A whole name: --lr is not documented by --lr-schedule.
  if ! grep -qE -- "(^|[^[:alnum:]-])${option}([^[:alnum:]-]|\$)" "${docs[@]}"; then
    missing+=("$option")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "check_docs_options: ${#missing[@]} of ${#options[@]} options of 'hetrain train --help'" \
    "appear in neither README.md nor docs/*.md:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "check_docs_options: all ${#options[@]} options of 'hetrain train --help' are documented"
