#!/usr/bin/env bash
# `make wheel-check`: the wheels in dist/ installed into a fresh virtual environment
# beside the same torch as .venv, and the smoke suite (tests/smoke) run from a
# folder outside the source tree, first on the CUDA wheel, then on the CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE=$PWD
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' symfocal/version.py)
VENV=$SOURCE/build/wheel-venv
RUN=$(mktemp -d)   # outside the tree: nothing here can shadow the installed package
trap 'rm -rf "$RUN"' EXIT
cp tests/smoke/test_installed.py "$RUN/"

# The venv gets .venv's packages (torch, numpy, pytest) through a .pth file rather than a
# second copy of torch: 5 GB less on disk, which CI's machine does not always have. A plain
# path in a .pth file is appended after the venv's own site-packages and its own .pth files
# are not read, so .venv's symfocal-dev.pth (the source tree) stays out of sys.path. The venv has
# no pip of its own (whose setuptools would shadow the one torch asks for): .venv's pip installs
# into it (--python).
SHARED=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  rm -rf "$VENV"
  .venv/bin/python -m venv --without-pip "$VENV"
  "$VENV/bin/python" -c "import sysconfig, pathlib, sys; pathlib.Path(sysconfig.get_paths()['purelib'], 'dev-packages.pth').write_text(sys.argv[1] + '\\n')" "$SHARED"
fi

PIP=(.venv/bin/python -m pip --python "$VENV/bin/python")

smoke() {  # $1: wheel, $2: cuda or cpu
  echo "=== $1"
  "${PIP[@]}" install -q --force-reinstall --no-deps "$1"
  "${PIP[@]}" check   # the wheel's requirements (torch major.minor, numpy) hold
  (cd "$RUN" && "$VENV/bin/python" -m symfocal.info &&
   SYMFOCAL_SOURCE_TREE=$SOURCE SYMFOCAL_EXPECT=$2 "$VENV/bin/python" -m pytest -q -p no:cacheprovider test_installed.py)
}

shopt -s nullglob
cuda_wheels=(dist/symfocal-"$VERSION"+cu*.whl)
cpu_wheels=(dist/symfocal-"$VERSION"+cpu-*.whl)
[ ${#cuda_wheels[@]} -eq 1 ] && [ ${#cpu_wheels[@]} -eq 1 ] || { echo "want one +cu and one +cpu wheel in dist/ (make wheel wheel-cpu)"; exit 1; }
smoke "${cuda_wheels[0]}" cuda
smoke "${cpu_wheels[0]}" cpu
echo "wheel check passed: ${cuda_wheels[0]} ${cpu_wheels[0]}"
