// The tests' child processes and testing/subprocess.h: arguments arrive intact (whatever
// quoting Windows' command line needs), a bad argument or an escaping exception fails the child
// with a message, pipes carry bytes both ways and reach end of file when only the children that
// were given an end hold it, a hung child is timed out and a killed one reports kKilledStatus, and
// StartProcess() redirects the standard streams. Run it with MAPKV_CHILD_EXEC=1 as well: then every
// child is this binary started afresh, as on Windows.
#include "testing/subprocess.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "testing/terminal.h"

namespace mapkv {
namespace {

using ::mapkv::test::ChildPipe;
using ::mapkv::test::Pipe;
using ::mapkv::test::RunChild;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::WaitChild;

// Arguments that a careless command line would mangle.
std::vector<std::string> AwkwardArgs() {
  return {"plain",
          "with space",
          "",
          "quote\"inside",
          "\"quoted\"",
          "back\\slash",
          "trailing backslash\\",
          "two trailing\\\\",
          "backslash before quote\\\"",
          "tab\there",
          "new\nline",
          "\xC3\xBCmlaut \xE2\x82\xAC",
          "--gtest_filter=*",
          "-"};
}

// Arguments: AwkwardArgs(), then 42, -7, the largest uint64_t and true as ChildArg writes them.
MAPKV_CHILD(EchoArgsChild) {
  const std::vector<std::string> want = AwkwardArgs();
  CHILD_CHECK(args.size() == want.size() + 4, args.size(), " arguments");
  for (size_t i = 0; i < want.size(); ++i) {
    CHILD_CHECK(args.at(i) == want[i], "argument ", i, ": \"", args.at(i), "\"");
  }
  CHILD_CHECK(args.Int<int>(want.size()) == 42);
  CHILD_CHECK(args.Int(want.size() + 1) == -7);
  CHILD_CHECK(args.Int<uint64_t>(want.size() + 2) == std::numeric_limits<uint64_t>::max());
  CHILD_CHECK(args.Bool(want.size() + 3));
  return 0;
}

TEST(SubprocessTest, ArgumentsArriveIntact) {
  std::vector<test::ChildArg> args;
  for (const std::string& arg : AwkwardArgs()) args.emplace_back(arg);
  args.emplace_back(42);
  args.emplace_back(-7);
  args.emplace_back(std::numeric_limits<uint64_t>::max());
  args.emplace_back(true);
  const int status = RunChild("EchoArgsChild", args);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
}

// Arguments: an integer, then `code`: exits with code.
MAPKV_CHILD(IntArgChild) {
  (void)args.Int<int>(0);
  return args.Int<int>(1);
}

MAPKV_CHILD(ThrowingChild) { throw std::runtime_error("thrown on purpose"); }

TEST(SubprocessTest, ExitStatusesAndBadArguments) {
  EXPECT_EQ(RunChild("IntArgChild", {7, 0}), 0);
  EXPECT_EQ(RunChild("IntArgChild", {7, 42}), 42);
  EXPECT_EQ(RunChild("IntArgChild", {"12x", 0}), test::kChildCheckFailed);
  EXPECT_EQ(RunChild("IntArgChild", {"", 0}), test::kChildCheckFailed);
  EXPECT_EQ(RunChild("IntArgChild", {"99999999999", 0}), test::kChildCheckFailed);  // not an int
  EXPECT_EQ(RunChild("IntArgChild", {7}), test::kChildCheckFailed);                 // missing
  EXPECT_EQ(RunChild("ThrowingChild"), test::kChildException);
  int pid = 0;
  EXPECT_NONFATAL_FAILURE(pid = StartChild("NoSuchChild"), "no child function named NoSuchChild");
  EXPECT_EQ(pid, -1);
  EXPECT_EQ(WaitChild(pid), test::kWaitError);
}

// Reads 8-byte numbers from `in` until end of file and writes their sum to `out`. Arguments: the
// read end of `in`, the write end of `out`.
MAPKV_CHILD(SumChild) {
  ChildPipe in = args.PipeEnd(0);
  ChildPipe out = args.PipeEnd(1);
  const std::string bytes = in.ReadAll(std::chrono::seconds(60));
  uint64_t sum = 0;
  for (uint64_t v : Pipe::DecodeU64s(bytes)) sum += v;
  CHILD_CHECK(out.WriteU64(sum));
  return 0;
}

TEST(SubprocessTest, PipesBothWays) {
  Pipe in, out;
  const int pid = StartChild("SumChild", {in.ReadEndArg(), out.WriteEndArg()});
  ASSERT_GT(pid, 0);
  in.CloseRead();
  out.CloseWrite();
  uint64_t want = 0;
  for (uint64_t i = 1; i <= 1000; ++i) {
    ASSERT_TRUE(in.WriteU64(i * i));
    want += i * i;
  }
  in.CloseWrite();
  const std::vector<uint64_t> got = Pipe::DecodeU64s(out.ReadAll(std::chrono::seconds(60)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], want);
  const int status = WaitChild(pid);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
}

// Writes a byte on `ready` (when given one), then sleeps until killed.
MAPKV_CHILD(SleeperChild) {
  std::optional<ChildPipe> ready;  // held open until the end
  if (args.size() > 0) {
    ready.emplace(args.PipeEnd(0));
    CHILD_CHECK(ready->Write("s"));
  }
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// A child holds only the pipe ends it was given: the others reach end of file when the parent
// closes them, though the child lives on.
TEST(SubprocessTest, ChildHoldsOnlyThePipeEndsItWasGiven) {
  Pipe ready, unrelated;
  const int pid = StartChild("SleeperChild", {ready.WriteEndArg()});
  ASSERT_GT(pid, 0);
  ready.CloseWrite();
  ASSERT_TRUE(ready.WaitByte(std::chrono::seconds(60)));
  unrelated.CloseWrite();
  const auto start = std::chrono::steady_clock::now();
  std::string got;
  EXPECT_FALSE(unrelated.ReadUntil(start + std::chrono::seconds(30), &got))
      << "the child holds a pipe end it was not given";
  EXPECT_FALSE(ready.Readable()) << "ready: end of file while its writer lives";
  EXPECT_EQ(test::KillChild(pid), test::kKilledStatus);
  EXPECT_TRUE(ready.Readable()) << "ready: no end of file once its only writer is dead";
}

TEST(SubprocessTest, HungChildIsTimedOutAndKilled) {
  const int pid = StartChild("SleeperChild");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitChild(pid, std::chrono::milliseconds(200)), test::kWaitTimedOut);
  EXPECT_FALSE(tools::WaitExitStatus(pid, std::chrono::milliseconds(0)).ok())
      << "the timed-out child was not reaped";
}

// Copies stdin to stdout, and writes "to stderr" to stderr.
MAPKV_CHILD(CatChild) {
  internal::SetBinaryMode(internal::StdStream::kIn);
  internal::SetBinaryMode(internal::StdStream::kOut);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) std::fwrite(buf, 1, n, stdout);
  std::fputs("to stderr", stderr);
  return 0;
}

TEST(SubprocessTest, StartProcessRedirectsTheStandardStreams) {
  TempDir dir;
  ASSERT_TRUE(test::WriteFile(dir.File("in"), std::string("line 1\nline 2\n\0binary", 21)));
  ASSERT_OK_AND_ASSIGN(const std::string self, tools::SelfExecutablePath());
  tools::StartOptions options;
  options.stdin_path = dir.File("in");
  options.stdout_path = dir.File("out");
  options.stderr_path = dir.File("err");
  ASSERT_OK_AND_ASSIGN(
      const int pid,
      tools::StartProcess({self, std::string(test::kChildFlag) + "CatChild"}, options));
  EXPECT_EQ(WaitChild(pid), 0);
  EXPECT_EQ(test::ReadFile(dir.File("out")), test::ReadFile(dir.File("in")));
  EXPECT_EQ(test::ReadFile(dir.File("err")), "to stderr");

  // One file for both, appended to.
  options.stdin_path = tools::NullDevicePath();
  options.stdout_path = options.stderr_path = dir.File("log");
  options.append_output = true;
  ASSERT_TRUE(test::WriteFile(dir.File("log"), "before;"));
  ASSERT_OK_AND_ASSIGN(
      const int second,
      tools::StartProcess({self, std::string(test::kChildFlag) + "CatChild"}, options));
  EXPECT_EQ(WaitChild(second), 0);
  EXPECT_EQ(test::ReadFile(dir.File("log")), "before;to stderr");
}

TEST(SubprocessTest, StartProcessNamesAMissingProgram) {
  TempDir dir;
  absl::StatusOr<int> pid = tools::StartProcess({dir.File("no-such-program")}, {});
  EXPECT_STATUS(pid, absl::StatusCode::kNotFound);
  EXPECT_NE(pid.status().message().find("no-such-program"), absl::string_view::npos)
      << pid.status();
  tools::StartOptions options;
  options.search_path = true;
  pid = tools::StartProcess({"mapkv-no-such-program-in-path"}, options);
  EXPECT_STATUS(pid, absl::StatusCode::kNotFound);
  options.search_path = false;
  options.stdin_path = dir.File("no-such-input");
  ASSERT_OK_AND_ASSIGN(const std::string self, tools::SelfExecutablePath());
  pid =
      tools::StartProcess({self, std::string(test::kChildFlag) + "IntArgChild", "0", "0"}, options);
  EXPECT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("no-such-input"), absl::string_view::npos) << pid.status();
}

// Writes 1 MiB to `path`; exits 0 when the write fails (past the file size limit), 1 when it
// succeeds. Arguments: path.
MAPKV_CHILD(WriteBigFileChild) {
  const bool written = test::WriteFile(args.at(0), std::string(1 << 20, 'x'));
  return written ? 1 : 0;
}

TEST(SubprocessTest, FileSizeLimit) {
  if (!tools::HasFileSizeLimit()) GTEST_SKIP() << "no RLIMIT_FSIZE on this platform";
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(const std::string self, tools::SelfExecutablePath());
  tools::StartOptions options;
  options.max_file_size = 64 << 10;
  ASSERT_OK_AND_ASSIGN(
      const int pid,
      tools::StartProcess(
          {self, std::string(test::kChildFlag) + "WriteBigFileChild", dir.File("big")}, options));
  EXPECT_EQ(WaitChild(pid), 0) << "a write past the limit succeeded";
  EXPECT_LE(test::FileSize(dir.File("big")), 64u << 10);
}

}  // namespace
}  // namespace mapkv
