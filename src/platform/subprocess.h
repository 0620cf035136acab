// The path tests/tool_test.cc includes. The child-process helpers are testing/subprocess.h
// (target mapkv_testing), which the library does not hold.
#include "testing/subprocess.h"
