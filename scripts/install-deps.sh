#!/usr/bin/env bash
# Installs exactly the Debian 12 packages hetrain needs, skipping those already present.
# Idempotent; works as root or through sudo. Nothing is downloaded from anywhere else.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake make pkg-config
  # MPI: the aggregator/trainer job and its launcher
  libopenmpi-dev openmpi-bin
  # LibTorch (CPU) and an optimised BLAS for it: Debian's LibTorch calls the system BLAS, which
  # is the reference BLAS (~8 GFLOP/s here) unless OpenBLAS (~120-150 GFLOP/s) is installed.
  libtorch-dev libopenblas0-openmp
  # files, text, command line
  libhdf5-dev zlib1g-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  # `--model FILE.pt`: every entry of the TorchScript archive checked against its CRC-32
  libminizip-dev
  # `data import-images`: OpenCV's image decoders and resize, the two parts of libopencv-dev it needs
  libopencv-imgcodecs-dev libopencv-imgproc-dev
  # tests and benchmarks
  googletest libgtest-dev libbenchmark-dev
  # scripts/fuzz.sh: clang with libFuzzer and its sanitizer runtimes (fuzz/README.md)
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
  # the default dataset, and what the Python scripts use
  dataset-fashion-mnist python3 python3-h5py python3-numpy
  # scripts/plot-metrics.py
  python3-matplotlib
  # scripts/lan-sim.sh: network namespaces, veth pairs and tbf shaping for the lan tests
  # (ctest -L lan; unshare and taskset come with util-linux, which every Debian has)
  iproute2
  # scripts/slurm-local.sh: a private one-node SLURM for the slurm tests (ctest -L slurm)
  slurm-wlm slurmctld slurmd slurm-client munge
  # bench/compare-pytorch.sh: the same models in PyTorch, for side-by-side speed; the own-model
  # tests (tests/tools/models/export_test_models.py: TorchScript files, torchvision's resnet18)
  python3-torch python3-torchvision
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Which BLAS LibTorch will call (Debian picks it with update-alternatives).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) echo "install-deps: BLAS is $blas" ;;
  *) echo "install-deps: warning: BLAS is '$blas', not OpenBLAS; matrix products will be slow" >&2 ;;
esac
