# Cross-compiling mapkv for Windows (x86-64) with Debian's mingw-w64, run under wine.
# Used by .ci/windows:  cmake -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake ...
# The -posix compilers are named on purpose: the win32 thread model of GCC 12 has no std::thread
# or std::mutex.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)

# Look for libraries and headers in the mingw sysroot (and what we install for it) only, never
# in the host's /usr/include.
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static: otherwise every .exe needs libstdc++, libgcc and winpthread DLLs beside it, and wine
# exits with code 53 when they are missing.
set(CMAKE_EXE_LINKER_FLAGS_INIT -static)
# add_test and gtest_discover_tests run the .exe files through wine.
set(CMAKE_CROSSCOMPILING_EMULATOR wine)
