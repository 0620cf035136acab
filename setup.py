"""Builds the Python package mapkv: its Python files from src/python/mapkv, and the extension
mapkv._mapkv by the project's CMake (target mapkv_python, with the static library built in;
no tests, benchmarks, tool or shared library). See pyproject.toml.

Environment: CMAKE (the cmake to run, default `cmake`), CMAKE_BUILD_PARALLEL_LEVEL (jobs),
MAPKV_CMAKE_ARGS (more -D arguments, space-separated).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(mapkv VERSION ([0-9.]+)", text).group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        build = Path(self.build_temp).resolve() / "cmake"
        cmake = os.environ.get("CMAKE", "cmake")
        configure = [
            cmake, "-S", str(ROOT), "-B", str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DMAPKV_BUILD_PYTHON=ON",
            "-DMAPKV_BUILD_TESTS=OFF", "-DMAPKV_BUILD_BENCH=OFF", "-DMAPKV_BUILD_TOOLS=OFF",
            "-DMAPKV_BUILD_SHARED=OFF",
        ]
        if shutil.which("ninja") and not (build / "CMakeCache.txt").exists():
            configure += ["-G", "Ninja"]
        configure += shlex.split(os.environ.get("MAPKV_CMAKE_ARGS", ""))
        subprocess.run(configure, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.run([cmake, "--build", str(build), "--target", "mapkv_python", "-j", jobs],
                       check=True)
        built = sorted((build / "python" / "mapkv").glob("_mapkv*" + Path(target).suffix))
        if len(built) != 1:
            raise RuntimeError(f"mapkv: expected one extension in {build}/python/mapkv: {built}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


setup(
    version=project_version(),
    packages=["mapkv"],
    package_dir={"": "src/python"},
    package_data={"mapkv": ["__init__.pyi", "py.typed"]},
    ext_modules=[CMakeExtension("mapkv._mapkv")],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": "build-python"}},
    zip_safe=False,
)
