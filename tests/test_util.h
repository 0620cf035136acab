// Helpers shared by the mapkv tests, one header per concern under tests/testing/, all included
// here: assertions on absl::Status / absl::StatusOr (status_matchers.h), child processes and
// pipes (child_process.h), temporary directories and files (temp_files.h), deterministic and
// stamped data (stamped_values.h), this process's resources (resources.h) and the environment's
// knobs (env.h). No system header: what needs the OS is in testing/subprocess.h (mapkv_testing),
// so the tests build on every platform.
#ifndef MAPKV_TESTS_TEST_UTIL_H_
#define MAPKV_TESTS_TEST_UTIL_H_

#include "tests/testing/child_process.h"
#include "tests/testing/commit_history.h"
#include "tests/testing/env.h"
#include "tests/testing/logged_lines.h"
#include "tests/testing/resources.h"
#include "tests/testing/stamped_values.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_files.h"

#endif  // MAPKV_TESTS_TEST_UTIL_H_
