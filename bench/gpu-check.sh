#!/usr/bin/env bash
# The one command for a GPU machine: checks the tools, builds hetrain with CUDA, runs the GPU
# tests, the aggregation benchmark, the node report, a short 3-rank training on the GPU and the MPI
# tests, and writes bench/results/gpu-check-<date>-<gpu>.json (copied to $OUT when that is set).
#
#   bench/gpu-check.sh [--debs DIR] [--torch PREFIX] [--out DIR]
#     --debs DIR      .deb files from scripts/fetch-gpu-debs.sh (Open MPI, HDF5, fmt, CLI11, json,
#                     GoogleTest, Fashion-MNIST), for a machine without those packages: unpacked
#                     with dpkg-deb -x into $PREFIX, never into /, and used from there
#     --torch PREFIX  LibTorch's CMake prefix (default: python3's torch.utils.cmake_prefix_path)
#     --out DIR       logs and the JSON of each step (default runs/gpu-check)
#   Environment (all optional):
#     PREFIX=/tmp/hetrain-prefix  where --debs are unpacked (emptied first; only a directory this
#                                 script made, marked by .hetrain-prefix, is ever removed)
#     BUILD_DIR=build-gpu         the CMake build directory (relative: to the repository root)
#     CUDA_ARCHS=native           CMAKE_CUDA_ARCHITECTURES (with no GPU: the project's default list)
#     NP=3                        MPI ranks of the training run (1 aggregator + NP-1 trainers)
#     STEP_TIMEOUT=900            seconds allowed to each program run (tests, benchmarks, training)
#     SKIP="train train-amp"      steps not to run this time (gpu-tests aggregate node-report train
#                                 train-amp mpi-tests), e.g. on a device lent for a few minutes;
#                                 each is recorded as "not run: SKIP"
#     MPI_TESTS=REGEX             only the MPI tests whose names match (ctest -R), e.g.
#                                 'wire_dtype|signal'
#
# Every step runs even if an earlier one failed (except those that need the build); each one's
# pass/fail goes into the results file, and the exit status is non-zero if any failed. Missing
# tools, a glibc too old for the .debs, or no GPU end it at once with one line saying so.
set -euo pipefail

die() { echo "gpu-check: $*" >&2; exit 1; }

debs=""                    # --debs: directory of .deb files, or empty to use installed packages
torch=""                   # --torch: LibTorch CMake prefix, or empty to ask python3's torch
out=runs/gpu-check         # --out: logs and per-step JSON
while [ $# -gt 0 ]; do
  case $1 in
    --debs | --torch | --out)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in --debs) debs=$2 ;; --torch) torch=$2 ;; --out) out=$2 ;; esac
      shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
# Paths given relative to where this was started, before moving to the repository's root.
[ -z "$debs" ] || debs=$(realpath -m -- "$debs")
[ -z "$torch" ] || torch=$(realpath -m -- "$torch")
[ "$out" = runs/gpu-check ] || out=$(realpath -m -- "$out")
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"   # to the repository's root; Open MPI's root variables
prefix=${PREFIX:-/tmp/hetrain-prefix}
build_dir=${BUILD_DIR:-build-gpu}
np=${NP:-3}
step_timeout=${STEP_TIMEOUT:-900}
min_glibc=2.36             # Debian 12's libevent calls arc4random, new in glibc 2.36

# --- 1. What this machine has ---------------------------------------------------------------
version_ge() { [ "$(printf '%s\n' "$2" "$1" | sort -V | sed -n 1p)" = "$2" ]; }   # $1 >= $2
echo "gpu-check: $(ldd --version | sed -n 1p)"
glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')    # e.g. 2.39
if [ -n "$debs" ] && ! version_ge "$glibc" "$min_glibc"; then
  die "glibc $glibc is older than $min_glibc, which the Debian 12 packages in $debs need; use a machine with glibc >= $min_glibc (Debian 12, Ubuntu 24.04) or MPI/HDF5/fmt packages of its own"
fi

missing=()                 # what is missing, in words; all reported together
[ -x /usr/local/cuda/bin/nvcc ] && PATH=$PATH:/usr/local/cuda/bin
nvcc=$(command -v nvcc || true)
[ -n "$nvcc" ] || missing+=("nvcc (not on PATH nor in /usr/local/cuda/bin)")
command -v cmake >/dev/null || missing+=("cmake")
cxx=$(command -v "${CXX:-c++}" || command -v g++ || true)   # only checked; CMake picks its own
[ -n "$cxx" ] || missing+=("a C++ compiler (c++ or g++)")
command -v python3 >/dev/null || missing+=("python3")
torch_version=""           # as python3's torch reports it, e.g. 2.11.0+cu130
if [ -z "$torch" ] && command -v python3 >/dev/null; then
  if torch=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null); then
    torch_version=$(python3 -c 'import torch; print(torch.__version__)')
    python3 -c 'import torch, sys; sys.exit(torch.version.cuda is None)' ||
      missing+=("a CUDA build of torch (python3's torch $torch_version has no CUDA)")
  else
    missing+=("python3's torch module (or pass --torch PREFIX)")
  fi
elif [ -n "$torch" ] && [ -z "$(find "$torch" -name TorchConfig.cmake -print -quit 2>/dev/null)" ]; then
  missing+=("TorchConfig.cmake under --torch $torch")
fi
if [ -n "$debs" ]; then
  compgen -G "$debs/*.deb" >/dev/null || missing+=(".deb files in $debs (scripts/fetch-gpu-debs.sh)")
  command -v dpkg-deb >/dev/null || missing+=("dpkg-deb (to unpack --debs)")
else
  # MPI, HDF5 and fmt must then be installed; look for their tools and headers.
  n=${#missing[@]}         # to tell below whether any of these three was missing
  command -v mpirun >/dev/null && command -v mpicc >/dev/null || missing+=("MPI (mpirun, mpicc)")
  compgen -G "/usr/include/hdf5.h" >/dev/null || compgen -G "/usr/include/hdf5/serial/hdf5.h" >/dev/null ||
    compgen -G "/usr/local/include/hdf5.h" >/dev/null || missing+=("HDF5 (hdf5.h)")
  compgen -G "/usr/include/fmt/format.h" >/dev/null || compgen -G "/usr/local/include/fmt/format.h" >/dev/null ||
    missing+=("fmt (fmt/format.h)")
  [ ${#missing[@]} -eq "$n" ] || missing+=("or, for MPI/HDF5/fmt, --debs DIR from scripts/fetch-gpu-debs.sh")
fi
if [ ${#missing[@]} -gt 0 ]; then
  die "missing: $(printf '%s; ' "${missing[@]}" | sed 's/; $//')"
fi
cmake_version=$(cmake --version | awk 'NR==1 {print $3}')

# The GPU: name and driver, or why there is none (then only the configure step runs).
gpu_name="" driver="" no_gpu=""
if ! command -v nvidia-smi >/dev/null; then
  no_gpu="nvidia-smi is not installed"
elif ! smi=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1) || [ -z "$smi" ]; then
  no_gpu="nvidia-smi found no GPU ($(echo "$smi" | sed -n 1p))"
else
  gpu_name=$(echo "$smi" | sed -n 1p | cut -d, -f1 | xargs)
  driver=$(echo "$smi" | sed -n 1p | cut -d, -f2 | xargs)
  echo "gpu-check: GPU $gpu_name, driver $driver ($(echo "$smi" | wc -l) visible)"
fi
[ -z "$no_gpu" ] || echo "gpu-check: no GPU: $no_gpu; configuring only, then stopping"
[ -n "$no_gpu" ] || [ -n "${CUDA_ARCHS:-}" ] || version_ge "$cmake_version" 3.24 ||
  die "cmake $cmake_version is older than 3.24, which CUDA_ARCHS=native needs; set CUDA_ARCHS (e.g. 90)"
nvcc_version=$("$nvcc" --version | sed -n 's/.*release [^,]*, V//p')   # e.g. 13.0.88
if [ -z "$torch_version" ]; then   # --torch: the version its CMake files declare
  torch_version=$(find "$torch" -name TorchConfigVersion.cmake -exec sed -n 's/.*PACKAGE_VERSION "\(.*\)".*/\1/p' {} + | sed -n 1p || true)
fi
echo "gpu-check: cmake $cmake_version, nvcc ${nvcc_version:-?}, torch ${torch_version:-?} from $torch"

# --- 2. Open MPI, HDF5, fmt ... from --debs, relocated into $prefix ----------------------------
cmake_deps=()              # extra cmake arguments that point FindMPI/FindHDF5 at the prefix
if [ -n "$debs" ]; then
  case $prefix in /?*) ;; *) die "PREFIX must be an absolute path other than / (got '$prefix')" ;; esac
  if [ -e "$prefix" ]; then
    [ -e "$prefix/.hetrain-prefix" ] || die "$prefix exists and was not made by gpu-check; remove it or set PREFIX"
    rm -rf "$prefix"
  fi
  mkdir -p "$prefix" && touch "$prefix/.hetrain-prefix"
  if [ -f "$debs/MANIFEST" ]; then
    (cd "$debs" && sha256sum --quiet -c MANIFEST) || die "$debs: files do not match MANIFEST"
  fi
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
  echo "gpu-check: unpacked $(compgen -G "$debs/*.deb" | wc -l) .debs into $prefix"

  lib=$prefix/usr/lib/x86_64-linux-gnu         # Debian's multiarch library directory
  # Links that Debian makes with update-alternatives in maintainer scripts (dpkg-deb -x runs none).
  for n in mpirun mpiexec mpicc mpicxx mpic++; do ln -sfn "$n.openmpi" "$prefix/usr/bin/$n"; done
  for f in "$prefix"/usr/lib/libpsm1/libpsm_infinipath.so.1.*; do   # libfabric and Open MPI's psm
    [ -e "$f" ] && ln -sfn "../libpsm1/${f##*/}" "$lib/libpsm_infinipath.so.1"
  done
  # Development links (libX.so) that point at the host (zlib1g-dev's is absolute) or at packages
  # left out: to the host's copy of that library if it has one, else removed.
  ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
  for link in "$lib"/lib*.so "$lib"/hdf5/serial/lib*.so; do
    [ -L "$link" ] || continue
    target=$(readlink "$link")
    [[ $target == /* ]] && ln -sfn "$prefix$target" "$link"
    [ -e "$link" ] && continue
    host=$("$ldconfig" -p | awk -v n="${link##*/}." '!h && index($1, n) == 1 && /x86-64/ {h = $NF} END {print h}')
    if [ -n "$host" ]; then ln -sfn "$host" "$link"; else rm "$link"; fi
  done

  # The environment that makes the relocated packages work; also saved for use by hand.
  cat >"$prefix/env.sh" <<EOF
# Made by bench/gpu-check.sh: the unpacked Debian 12 packages under $prefix. Source it.
# Programs and libraries (Debian 12 still puts a few libraries in /lib):
export PATH=$prefix/usr/bin:\$PATH
export LD_LIBRARY_PATH=$lib:$prefix/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
# Open MPI (required): install directories below its prefix (components, help texts, mpirun's
# option table, mpicc's wrapper data) follow OPAL_PREFIX; without it mpirun says 'unknown
# option -np'. Its configuration directory, Debian's /etc/openmpi, does not follow; that file
# turns off the ucx/ofi/openib transports.
export OPAL_PREFIX=$prefix/usr
export OPAL_SYSCONFDIR=$prefix/etc/openmpi
# One node and no ssh here: Open MPI's default launcher (rsh) refuses to start without ssh or
# rsh even for local ranks ('plm_rsh_agent: ssh : rsh ... could not be found').
export OMPI_MCA_plm=\${OMPI_MCA_plm:-isolated}
# PMIx (Debian's is separate from Open MPI): PMIX_PREFIX alone does not move its component
# directory, and its pmix-mca-params.conf names /usr/lib/x86_64-linux-gnu/pmix2/lib/pmix;
# without these, every rank warns that PMIx has no compression library.
export PMIX_PREFIX=$lib/pmix2
export PMIX_PKGLIBDIR=$lib/pmix2/lib/pmix
export PMIX_PKGDATADIR=$lib/pmix2/share/pmix
export PMIX_MCA_mca_base_component_path=$lib/pmix2/lib/pmix
# hwloc: no plugins are shipped; keep it from loading the host's (a compiled-in /usr path).
export HWLOC_PLUGINS_PATH=$lib/hwloc
# CMake: the prefix's packages (fmt, CLI11, nlohmann_json, GTest configs; zlib; MPI through
# mpicc; HDF5 under Debian's hdf5/serial, with no h5cc, which would name /usr).
export CMAKE_PREFIX_PATH=$prefix/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}
export MPI_HOME=$prefix/usr
export HDF5_ROOT=$lib/hdf5/serial
EOF
  # shellcheck source=/dev/null
  . "$prefix/env.sh"
  cmake_deps=(-DMPI_C_COMPILER="$prefix/usr/bin/mpicc" -DHDF5_ROOT="$lib/hdf5/serial")

  # Every program and library there must find what it needs (here or on the host). Not UCX's
  # modules: they find each other through a /usr RUNPATH, and Open MPI here does not use UCX.
  unresolved=$(find "$prefix/usr/bin" "$lib" "$prefix/lib" -path "$lib/ucx" -prune -o -type f \
    \( -perm -u+x -o -name '*.so*' \) -exec sh -c 'for f; do head -c4 "$f" | grep -q ELF || continue
      ldd "$f" 2>&1 | grep -E "not found" | sed "s|^|$f: |"; done' sh {} + | sort -u)
  [ -z "$unresolved" ] || die "libraries the host lacks: $(echo "$unresolved" | sed "s|$prefix/||" | sed -n 1,5p | tr '\n' ';')"
fi
# Open MPI on one node, maybe in a container (gVisor/Docker): its default launcher (rsh) will
# not start, even for local ranks, without ssh or rsh installed; containers often forbid
# cross-process memory reads (CMA) and CPU binding, and Open MPI aborts on either. The local
# launcher, plain shared memory and no binding work everywhere. Each can be overridden.
export OMPI_MCA_plm=${OMPI_MCA_plm:-isolated}
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}

# --- 3. Steps ----------------------------------------------------------------------------------
mkdir -p "$out"
for f in aggregate.json node-report.json train-summary.json train-amp-summary.json; do rm -f "${out:?}/$f"; done  # stale outputs
steps=()                   # "name status" in order run; status: pass, fail or "not run: why"
skip=" ${SKIP:-} "          # steps not to run, space-separated
step() {  # step NAME CMD...: runs CMD, output to the terminal and $out/NAME.log, records pass/fail
  local name=$1; shift
  if [[ $skip == *" $name "* ]]; then steps+=("$name not run: SKIP"); echo "== gpu-check: $name: skipped (SKIP)"; return 0; fi
  echo "== gpu-check: $name: $*"
  if "$@" 2>&1 | tee "$out/$name.log"; then steps+=("$name pass"); else steps+=("$name fail"); fi
  echo "== gpu-check: $name: ${steps[-1]#* }"
}
stdout_to() { local f=$1; shift; "$@" >"$f"; }   # stdout_to FILE CMD...: CMD's stdout into FILE
status_of() { local s; for s in "${steps[@]}"; do [ "${s%% *}" != "$1" ] || echo "${s#* }"; done; }
demand() {  # demand WHY PYTHON-EXPR: if the last step passed but fails this test, it failed
  [ "${steps[-1]#* }" = pass ] || return 0
  if ! python3 -c "$2" 2>/dev/null; then
    steps[-1]="${steps[-1]%% *} fail"; echo "== gpu-check: ${steps[-1]%% *}: fail ($1)"
  fi
}

cuda_archs=${CUDA_ARCHS:-native}
[ -z "$no_gpu" ] || cuda_archs=${CUDA_ARCHS:-}   # nothing to detect: keep the project's list
configure=(cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DHETRAIN_CUDA=ON
  -DCMAKE_CUDA_COMPILER="$nvcc"
  -DCMAKE_PREFIX_PATH="$torch${debs:+;$prefix/usr}"
  -DUSE_SYSTEM_NVTX=ON "${cmake_deps[@]}")     # USE_SYSTEM_NVTX: torch's config finds nvtx3 in CUDA
[ -z "$cuda_archs" ] || configure+=(-DCMAKE_CUDA_ARCHITECTURES="$cuda_archs")
[ -f "$build_dir/CMakeCache.txt" ] || ! command -v ninja >/dev/null || configure+=(-G Ninja)
step configure "${configure[@]}"
[ -z "$no_gpu" ] || die "no GPU: $no_gpu (configure: ${steps[-1]#* }); stopping before the build"

step build cmake --build "$build_dir" -j "$(nproc)"
if [ "$(status_of build)" = pass ]; then
  step gpu-tests timeout "$step_timeout" ctest --test-dir "$build_dir" -L gpu --output-on-failure --no-tests=error
  # ctest counts a case that skipped (no device visible) as passed; on a GPU machine it is not.
  demand "cases skipped: no device visible to them" "import sys; sys.exit('(Skipped)' in open('$out/gpu-tests.log').read())"
  if [ -x "$build_dir/bench_aggregate" ]; then
    step aggregate timeout "$step_timeout" "$build_dir/bench_aggregate" --device both --json "$out/aggregate.json"
    # Without a usable device it measures the CPU alone and still exits 0.
    demand "no CUDA results in aggregate.json" "import json, sys; d = json.load(open('$out/aggregate.json'))
sys.exit(not any(r.get('device') == 'cuda' for r in d.get('results', [])))"
  else
    steps+=("aggregate fail"); echo "== gpu-check: aggregate: fail ($build_dir/bench_aggregate was not built)"
  fi
  step node-report stdout_to "$out/node-report.json" timeout "$step_timeout" "$build_dir/hetrain" bench --json
  demand "no GPU in the node report" "import json, sys; sys.exit(not json.load(open('$out/node-report.json')).get('gpus'))"
  if [ -f data/fashion-mnist-train.h5 ] && [ -f data/fashion-mnist-test.h5 ]; then
    steps+=("prepare-data pass"); echo "gpu-check: prepare-data: data/fashion-mnist-{train,test}.h5 are there"
  else
    fm=/usr/share/datasets/fashion-mnist        # Debian's dataset-fashion-mnist, host or prefix
    [ -d "$fm" ] || fm=$prefix$fm
    step prepare-data env HETRAIN="$build_dir/hetrain" FASHION_MNIST_DIR="$fm" scripts/prepare-data.sh
  fi
  step train timeout "$step_timeout" mpirun --oversubscribe --allow-run-as-root -np "$np" \
    "$build_dir/hetrain" train --data data/fashion-mnist-train.h5 --test-data data/fashion-mnist-test.h5 \
    --model cnn --epochs 1 --device cuda --aggregator-device cuda --summary-json "$out/train-summary.json"
  # The same with mixed precision and 16-bit uploads (the bf16 kernel path at rank 0).
  step train-amp timeout "$step_timeout" mpirun --oversubscribe --allow-run-as-root -np "$np" \
    "$build_dir/hetrain" train --data data/fashion-mnist-train.h5 --test-data data/fashion-mnist-test.h5 \
    --model cnn --epochs 1 --device cuda --aggregator-device cuda --amp bf16 --wire-dtype bf16 \
    --summary-json "$out/train-amp-summary.json"
  # The MPI tests with GPU trainers and a GPU aggregator (they choose the devices by themselves).
  # Their checks read checkpoints with h5py: HETRAIN_PYTHON names a python that has it (a GPU
  # machine's /usr/bin/python3 may lack it, and then every case that reads a checkpoint fails).
  step mpi-tests env HETRAIN_PYTHON="$(command -v python3)" timeout "$step_timeout" \
    ctest --test-dir "$build_dir" -L mpi ${MPI_TESTS:+-R "$MPI_TESTS"} --output-on-failure --no-tests=error
else
  for s in gpu-tests aggregate node-report prepare-data train train-amp mpi-tests; do steps+=("$s not run: build failed"); done
fi

# --- 4. Results --------------------------------------------------------------------------------
day=$(date +%F)
slug=$(echo "$gpu_name" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
results=bench/results/gpu-check-$day-$slug.json
mkdir -p bench/results
GC_DAY=$day GC_HOST=$(uname -n) GC_GPU=$gpu_name GC_DRIVER=$driver GC_NVCC=$nvcc_version \
GC_TORCH=$torch_version GC_TORCH_DIR=$torch GC_GLIBC=$glibc GC_CMAKE=$cmake_version \
GC_DEBS=$debs GC_PREFIX=${debs:+$prefix} GC_OUT=$out GC_STEPS=$(printf '%s\n' "${steps[@]}") \
python3 - "$results" <<'EOF'
import json, os, sys
e = os.environ
out = e["GC_OUT"]
def load(name):  # a step's JSON output, or what was there instead
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError as err:
        return {"invalid_json": str(err), "text": text[:4000]}
def tail(name, n=40):
    try:
        with open(os.path.join(out, name + ".log"), errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []
steps = {}
for line in e["GC_STEPS"].splitlines():
    name, status = line.split(" ", 1)
    steps[name] = ({"status": status} if status in ("pass", "not run: SKIP")
                   else {"status": status, "log_tail": tail(name)})
doc = {
    "date": e["GC_DAY"], "host": e["GC_HOST"], "gpu": e["GC_GPU"], "driver": e["GC_DRIVER"],
    "nvcc": e["GC_NVCC"], "torch": e["GC_TORCH"], "torch_cmake_prefix": e["GC_TORCH_DIR"],
    "glibc": e["GC_GLIBC"], "cmake": e["GC_CMAKE"],
    "debs": e["GC_DEBS"] or None, "prefix": e["GC_PREFIX"] or None,
    "openmpi_mca_env": {k: v for k, v in sorted(e.items()) if k.startswith("OMPI_MCA_")},
    "passed": all(s["status"] in ("pass", "not run: SKIP") for s in steps.values()),
    "skipped": [n for n, s in steps.items() if s["status"] == "not run: SKIP"],
    "steps": steps,
    "aggregate": load("aggregate.json"),
    "node_report": load("node-report.json"),
    "train_summary": load("train-summary.json"),
    "train_amp_summary": load("train-amp-summary.json"),
}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
EOF
echo "gpu-check: wrote $results"
if [ -n "${OUT:-}" ]; then   # a collecting tool's folder: the results and the logs
  cp "$results" "$OUT/"
  tar -czf "$OUT/gpu-check-logs.tar.gz" -C "$out" .
fi

failed=$(printf '%s\n' "${steps[@]}" | awk '$2 != "pass" && !/not run: SKIP$/ {print $1}' | xargs)
for s in "${steps[@]}"; do printf '  %-13s %s\n' "${s%% *}" "${s#* }"; done
[ -z "$failed" ] || die "failed: $failed"
echo "gpu-check: all steps passed"
