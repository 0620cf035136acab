# Finds xxHash (Debian: libxxhash-dev), which ships no CMake config. Defines xxHash::xxhash.
# mapkv compiles xxHash inline (src/hash.h defines XXH_INLINE_ALL), so the header alone will do: a
# cross build (.ci/windows) copies only xxhash.h for its target.
find_path(xxHash_INCLUDE_DIR xxhash.h)
find_library(xxHash_LIBRARY NAMES xxhash)
include(FindPackageHandleStandardArgs)
if(xxHash_LIBRARY)
  find_package_handle_standard_args(xxHash REQUIRED_VARS xxHash_LIBRARY xxHash_INCLUDE_DIR)
else()
  find_package_handle_standard_args(xxHash REQUIRED_VARS xxHash_INCLUDE_DIR)
endif()
if(xxHash_FOUND AND NOT TARGET xxHash::xxhash)
  if(xxHash_LIBRARY)
    add_library(xxHash::xxhash UNKNOWN IMPORTED)
    set_target_properties(xxHash::xxhash PROPERTIES
      IMPORTED_LOCATION "${xxHash_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${xxHash_INCLUDE_DIR}")
  else()
    add_library(xxHash::xxhash INTERFACE IMPORTED)
    set_target_properties(xxHash::xxhash PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${xxHash_INCLUDE_DIR}")
  endif()
endif()
mark_as_advanced(xxHash_INCLUDE_DIR xxHash_LIBRARY)
