#!/usr/bin/env bash
# The Python package as pip installs it (registered by tests/python/CMakeLists.txt as
# python_package_test, labels python and package): `pip install --no-build-isolation --no-index
# --target` of a copy of the source tree (setup.py builds the extension with the project's CMake,
# offline), then, from a directory elsewhere, an import of what was installed: the extension, the
# stubs and py.typed beside it, and a database written and read through it. Exit 77 (ctest:
# skipped) where this python lacks pip, setuptools or wheel.
#
# Usage: package_test.sh PYTHON SOURCE_DIR WORK_DIR
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 PYTHON SOURCE_DIR WORK_DIR" >&2
  exit 2
fi
py=$1 src=$2 work=$3
fail() { echo "python_package_test: $*" >&2; exit 1; }
for module in pip setuptools wheel; do
  if ! "$py" -c "import $module" 2>/dev/null; then
    echo "python_package_test: SKIPPED: $py has no $module (Debian: apt-get install -y" \
         "python3-pip python3-setuptools python3-wheel)"
    exit 77
  fi
done

rm -rf "$work" && mkdir -p "$work"
# A copy of the tree, without build outputs: pip builds in place (setuptools' build-python/ and
# egg-info), which must not land in the checkout.
"$py" - "$src" "$work/src" <<'PY'
import shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2], symlinks=True,
                ignore=shutil.ignore_patterns(".git", "build*", "cmake-build*", "dist",
                                              "*.egg-info", "__pycache__"))
PY
echo "== pip install --no-build-isolation --no-index --target $work/target"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install --no-build-isolation --no-index \
  --target "$work/target" "$work/src" >"$work/pip.log" 2>&1 \
  || { tail -50 "$work/pip.log" >&2; fail "pip install failed (log: $work/pip.log)"; }

echo "== the installed package"
cd "$work"
PYTHONPATH="$work/target" PYTHONDONTWRITEBYTECODE=1 "$py" - "$work/target" "$work/db.mapkv" <<'PY'
import os, sys
target, path = sys.argv[1], sys.argv[2]
import mapkv
here = os.path.dirname(mapkv.__file__)
assert os.path.realpath(here) == os.path.realpath(os.path.join(target, "mapkv")), here
for f in ("__init__.py", "__init__.pyi", "py.typed"):
    assert os.path.exists(os.path.join(here, f)), f"not installed: mapkv/{f}"
assert any(f.startswith("_mapkv.") and f.endswith(".so") for f in os.listdir(here)), here
assert mapkv.DB.__module__ == "mapkv"
assert not hasattr(mapkv._mapkv, "_bench_get_loop")
with mapkv.open(path) as db:
    db[b"hello"] = b"world"
    with db.begin() as txn:
        assert dict(txn.items()) == {b"hello": b"world"}
print(f"  {here}: mapkv {mapkv.__version__}: hello={db.path and b'world'.decode()}")
PY
echo "python_package_test: OK"
