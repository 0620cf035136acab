// Assertions on absl::Status and absl::StatusOr: EXPECT_OK, ASSERT_OK, EXPECT_STATUS (a code),
// EXPECT_OK_AND_EQ, ASSERT_OK_AND_ASSIGN; Describe() shows bytes in a failure message.
#ifndef MAPKV_TESTS_TESTING_STATUS_MATCHERS_H_
#define MAPKV_TESTS_TESTING_STATUS_MATCHERS_H_

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace mapkv::test {

inline const absl::Status& ToStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// A short printable form of binary data: its size and an escaped prefix.
inline std::string Describe(std::string_view data) {
  constexpr size_t kShown = 48;
  std::string shown =
      absl::CHexEscape(absl::string_view(data.data(), std::min(data.size(), kShown)));
  return absl::StrCat(data.size(), " bytes \"", shown, data.size() > kShown ? "\"..." : "\"");
}

template <typename T>
::testing::AssertionResult IsOkFormat(const char* expr, const T& status_or) {
  const absl::Status& status = ToStatus(status_or);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " returned " << status;
}

template <typename T>
::testing::AssertionResult HasCodeFormat(const char* expr, const char* /*code_expr*/,
                                         const T& status_or, absl::StatusCode code) {
  const absl::Status& status = ToStatus(status_or);
  if (status.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << expr << " returned " << status << ", expected code " << absl::StatusCodeToString(code);
}

template <typename T, typename U>
::testing::AssertionResult OkAndEqFormat(const char* expr, const char* expected_expr,
                                         const absl::StatusOr<T>& got, const U& expected) {
  if (!got.ok()) {
    return ::testing::AssertionFailure()
           << expr << " returned " << got.status() << ", expected the value " << expected_expr;
  }
  const std::string_view got_view(*got);
  const std::string_view want_view(expected);
  if (got_view == want_view) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << expr << " returned " << Describe(got_view) << ", expected " << expected_expr << " = "
         << Describe(want_view);
}

}  // namespace mapkv::test

// EXPECT_OK(expr) / ASSERT_OK(expr): expr is an absl::Status or absl::StatusOr<T> that must be OK.
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::mapkv::test::IsOkFormat, expr)
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::mapkv::test::IsOkFormat, expr)

// EXPECT_STATUS(expr, absl::StatusCode::kNotFound): expr (Status or StatusOr) has that code.
#define EXPECT_STATUS(expr, code) EXPECT_PRED_FORMAT2(::mapkv::test::HasCodeFormat, expr, code)
#define ASSERT_STATUS(expr, code) ASSERT_PRED_FORMAT2(::mapkv::test::HasCodeFormat, expr, code)

// EXPECT_OK_AND_EQ(expr, expected): expr is an OK absl::StatusOr whose value (a string or
// string_view) equals `expected`. Prints sizes and escaped prefixes, not megabytes of binary.
#define EXPECT_OK_AND_EQ(expr, expected) \
  EXPECT_PRED_FORMAT2(::mapkv::test::OkAndEqFormat, expr, expected)
#define ASSERT_OK_AND_EQ(expr, expected) \
  ASSERT_PRED_FORMAT2(::mapkv::test::OkAndEqFormat, expr, expected)

// ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path)): asserts the StatusOr is OK and moves its value
// into the declaration or lvalue `lhs`.
#define MAPKV_TEST_CONCAT_INNER(a, b) a##b
#define MAPKV_TEST_CONCAT(a, b) MAPKV_TEST_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  MAPKV_TEST_ASSERT_OK_AND_ASSIGN_IMPL(MAPKV_TEST_CONCAT(mapkv_statusor_, __LINE__), lhs, rexpr)
#define MAPKV_TEST_ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, rexpr)           \
  auto statusor = (rexpr);                                                   \
  ASSERT_TRUE(statusor.ok()) << #rexpr << " returned " << statusor.status(); \
  lhs = std::move(statusor).value()

#endif  // MAPKV_TESTS_TESTING_STATUS_MATCHERS_H_
