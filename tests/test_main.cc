// main() of every test binary. `--mapkv_child=NAME args...` as the first argument runs the child
// function NAME (MAPKV_CHILD, tests/test_util.h) with those arguments and exits with its return
// value, never entering gtest: this is how StartChild() runs a child in a fresh process (always on
// Windows; on POSIX with MAPKV_CHILD_EXEC=1). Anything else runs the tests.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "test_util.h"
#include "testing/subprocess.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]).substr(0, mapkv::test::kChildFlag.size()) ==
                       mapkv::test::kChildFlag) {
    std::vector<std::string> args = mapkv::tools::ProgramArguments(argc, argv);
    const std::string name =
        args.size() >= 2 ? args[1].substr(mapkv::test::kChildFlag.size()) : std::string();
    args.erase(args.begin(), args.begin() + std::min<size_t>(args.size(), 2));
    const int rc = mapkv::test::RunChildFunction(name, std::move(args));
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    // As a forked child does: no atexit handlers, no static destructors (the child's objects are
    // its function's, already destroyed).
    std::_Exit(rc);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
