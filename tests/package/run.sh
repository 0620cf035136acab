#!/usr/bin/env bash
# The installed package, used as a stranger would (registered by tests/CMakeLists.txt as
# package_test): installs the library's components (lib, dev) of a build into a temporary
# prefix, checks the layout, builds tests/package/ against it with find_package(mapkv), builds
# consumer.c with the flags of `pkg-config mapkv` (shared) and `pkg-config --static mapkv`
# (static) and consumer.cc (the C++ API, which names abseil's types) with those of
# `pkg-config mapkv` alone, and runs every consumer. Then configures tests/package/subproject, a
# parent project that adds mapkv with add_subdirectory().
#
# Usage: run.sh BUILD_DIR WORK_DIR CMAKE CC CXX LIBDIR VERSION
set -euo pipefail
if [ $# -ne 7 ]; then
  echo "usage: $0 BUILD_DIR WORK_DIR CMAKE CC CXX LIBDIR VERSION" >&2
  exit 2
fi
build=$1 work=$2 cmake=$3 cc=$4 cxx=$5 libdir_rel=$6 version=$7
src=$(cd "$(dirname "$0")" && pwd)
fail() { echo "package_test: $*" >&2; exit 1; }
command -v pkg-config >/dev/null || fail "pkg-config is not installed (apt-get install -y pkg-config)"

rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
libdir=$prefix/$libdir_rel
for component in lib dev; do
  "$cmake" --install "$build" --prefix "$prefix" --component "$component" >"$work/install-$component.log" \
    || { cat "$work/install-$component.log" >&2; fail "cmake --install --component $component failed"; }
done

echo "== the layout under $prefix"
so_major=${version%.*}  # SOVERSION: major.minor while the version is 0.x
[ "${version%%.*}" = 0 ] || so_major=${version%%.*}
for f in include/mapkv/c.h include/mapkv/db.h include/mapkv/cache.h \
         "$libdir_rel/libmapkv.a" "$libdir_rel/libmapkv.so" "$libdir_rel/libmapkv.so.$so_major" \
         "$libdir_rel/libmapkv.so.$version" "$libdir_rel/cmake/mapkv/mapkvConfig.cmake" \
         "$libdir_rel/cmake/mapkv/mapkvConfigVersion.cmake" "$libdir_rel/cmake/mapkv/mapkvTargets.cmake" \
         "$libdir_rel/pkgconfig/mapkv.pc"; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
  echo "  $f"
done
[ "$(readlink "$libdir/libmapkv.so")" = "libmapkv.so.$so_major" ] || fail "libmapkv.so links elsewhere"
# The shared library exports the C API and the C++ API.
exports=$(nm -D --defined-only "$libdir/libmapkv.so.$version")
for sym in mapkv_open mapkv_cache_get_or_compute mapkv_compact _ZN5mapkv2DB4Open _ZN5mapkv5Cache4Open; do
  grep -q " T $sym" <<<"$exports" || fail "libmapkv.so does not export $sym"
done
soname=$(readelf -d "$libdir/libmapkv.so.$version" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
[ "$soname" = "libmapkv.so.$so_major" ] || fail "SONAME is '$soname'"

db() { rm -f "$work/$1.mapkv"; echo "$work/$1.mapkv"; }
needs() { readelf -d "$1" | sed -n 's/.*NEEDED.*\[\(.*\)\].*/\1/p'; }  # needs BINARY: its DT_NEEDED
expect() {  # expect NAME OUTPUT COMMAND...: runs COMMAND, whose output must be OUTPUT
  local name=$1 want=$2; shift 2
  local got
  got=$("$@") || fail "$name failed: $got"
  [ "$got" = "$want" ] || fail "$name printed '$got', expected '$want'"
  echo "  $name: $got"
}

echo "== find_package(mapkv): a separate project"
"$cmake" -S "$src" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
  >"$work/consumer-configure.log" 2>&1 || { cat "$work/consumer-configure.log" >&2; fail "configure failed"; }
"$cmake" --build "$work/consumer" >"$work/consumer-build.log" 2>&1 \
  || { cat "$work/consumer-build.log" >&2; fail "build failed"; }
expect consumer_static "mapkv $version: hello=world" "$work/consumer/consumer_static" "$(db static)"
expect consumer_shared "mapkv $version: hello=world" "$work/consumer/consumer_shared" "$(db shared)"
expect consumer_cxx "mapkv C++: hello=world" "$work/consumer/consumer_cxx" "$(db cxx)"
# Each links what its target says.
grep -q libmapkv <<<"$(needs "$work/consumer/consumer_static")" && fail "consumer_static needs libmapkv.so"
grep -qx "libmapkv.so.$so_major" <<<"$(needs "$work/consumer/consumer_shared")" \
  || fail "consumer_shared does not need libmapkv.so.$so_major"

echo "== pkg-config mapkv"
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion mapkv)" = "$version" ] || fail "pkg-config --modversion mapkv"
cflags=$(pkg-config --cflags mapkv)
libs=$(pkg-config --libs mapkv)
static_libs=$(pkg-config --static --libs mapkv)
echo "  --cflags: $cflags"
echo "  --libs: $libs"
echo "  --static --libs: $static_libs"
# Shared: what a C program's build line takes.
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Werror -o "$work/consumer_pc" "$src/consumer.c" $cflags $libs
expect consumer_pc "mapkv $version: hello=world" env LD_LIBRARY_PATH="$libdir" "$work/consumer_pc" "$(db pc)"
# C++: mapkv/db.h names abseil's types; the flags of pkg-config mapkv alone build and link it.
# shellcheck disable=SC2086
"$cxx" -std=c++20 -Wall -Werror -o "$work/consumer_pc_cxx" "$src/consumer.cc" $cflags $libs
expect consumer_pc_cxx "mapkv C++: hello=world" env LD_LIBRARY_PATH="$libdir" \
  "$work/consumer_pc_cxx" "$(db pc_cxx)"
# Static: libmapkv.a itself, and everything --static adds to link it.
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Werror -o "$work/consumer_pc_static" "$src/consumer.c" $cflags \
  "$libdir/libmapkv.a" ${static_libs//-lmapkv/}
grep -q libmapkv <<<"$(needs "$work/consumer_pc_static")" && fail "consumer_pc_static needs libmapkv.so"
expect consumer_pc_static "mapkv $version: hello=world" "$work/consumer_pc_static" "$(db pc_static)"

echo "== add_subdirectory(mapkv) from a parent project (configured only)"
"$cmake" -S "$src/subproject" -B "$work/parent" -DMAPKV_SOURCE_DIR="$src/../.." \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >"$work/parent-configure.log" 2>&1 \
  || { cat "$work/parent-configure.log" >&2; fail "the parent project's configure failed"; }
echo "  no build type forced; no tests, benchmarks, tool or Python package"

echo "package_test: OK"
