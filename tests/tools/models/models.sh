# shellcheck shell=bash
# shellcheck disable=SC2154  # $work, $tools, skip: from tests/e2e/mpi/common.sh, sourced first
# Sourced by the own-model cases (tests/e2e/mpi/{script_model,model_loss,torchvision_resnet}.sh)
# after tests/e2e/mpi/common.sh. Sets:
#   $torch_py                  a python with torch, h5py and numpy: HETRAIN_PYTHON, else Debian's
#                              /usr/bin/python3 (python3-torch, python3-h5py), else python3 on PATH;
#                              the case skips (exit 77) when there is none
#   export_models NAME...      tests/tools/models/export_test_models.py into $work/models (NAME.pt)
#   need_torchvision           skip unless $torch_py also has torchvision (python3-torchvision)
torch_py=""
for candidate in ${HETRAIN_PYTHON:-} /usr/bin/python3 python3; do
  if "$candidate" -c 'import torch, h5py, numpy' 2>/dev/null; then
    torch_py=$(command -v "$candidate"); break
  fi
done
[ -n "$torch_py" ] || skip "no python with torch, h5py and numpy (install python3-torch)"
models=$work/models
export_models() { "$torch_py" "$tools/models/export_test_models.py" "$models" "$@" >/dev/null; }
need_torchvision() {
  "$torch_py" -c 'import torchvision' 2>/dev/null ||
    skip "$torch_py has no torchvision (install python3-torchvision)"
}
