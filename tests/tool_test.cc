// The `mapkv` tool, run as the real binary (MAPKV_TOOL_PATH, set by tests/CMakeLists.txt): every
// subcommand's happy path and its errors with their exit statuses, binary-safe dump and load in
// both formats, and compaction: it shrinks, keeps the content, refuses while the database is
// open elsewhere, survives being killed at random moments, and cleans up after a failure. Backup,
// compaction into another file, dump and check beside another process's commits: those commits
// never wait, and what the tool read is the state of one commit.
//
//   MAPKV_TOOL_KILLS   SIGKILLs of a running compaction (50)
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "mapkv/cache.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/platform/fs.h"
#include "src/platform/process.h"
#include "test_util.h"
#include "testing/subprocess.h"

#ifndef MAPKV_TOOL_PATH
#error "MAPKV_TOOL_PATH must name the mapkv binary"
#endif
#ifndef MAPKV_SOURCE_DIR
#define MAPKV_SOURCE_DIR ""
#endif

namespace mapkv {
namespace {

using test::ReadFile;
using test::TempDir;
using test::WriteFile;
using Content = std::map<std::string, std::string>;

struct ToolResult {
  int status = -1;  // as test::WaitChild reports it
  std::string out;
  std::string err;
};

// Starts the tool with `args`, stdin from `in_path` ("" : the null device), stdout and stderr into
// files. `limit_file_size` > 0 sets RLIMIT_FSIZE in the child (with SIGXFSZ ignored, so a write
// past it fails with EFBIG, as on a full disk): POSIX only. Returns its pid, -1 (with a test
// failure) when it cannot be started.
int StartTool(const std::vector<std::string>& args, const std::string& in_path,
              const std::string& out_path, const std::string& err_path,
              uint64_t limit_file_size = 0) {
  std::vector<std::string> argv = {MAPKV_TOOL_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  tools::StartOptions options;
  options.stdin_path = in_path.empty() ? tools::NullDevicePath() : in_path;
  options.stdout_path = out_path;
  options.stderr_path = err_path;
  options.max_file_size = limit_file_size;
  absl::StatusOr<int> pid = tools::StartProcess(argv, options);
  if (!pid.ok()) {
    ADD_FAILURE() << pid.status();
    return -1;
  }
  return *pid;
}

class ToolTest : public ::testing::Test {
 protected:
  std::string Path(std::string_view name) const { return dir_.File(name); }

  ToolResult Run(const std::vector<std::string>& args, std::string_view input = {},
                 uint64_t limit_file_size = 0) {
    const std::string in = Path("tool.stdin");
    const std::string out = Path("tool.stdout");
    const std::string err = Path("tool.stderr");
    EXPECT_TRUE(WriteFile(in, input));
    ToolResult r;
    r.status = test::WaitChild(StartTool(args, in, out, err, limit_file_size));
    r.out = ReadFile(out);
    r.err = ReadFile(err);
    return r;
  }

  // `mapkv dump DB` into `out`, a pipe that nothing reads until FinishStalledDump: returns its
  // pid once its first byte arrived (-1, with a failure, when none did). Its snapshot is open from
  // then until FinishStalledDump when its output is many times what the pipe and its own buffer
  // hold: it cannot end before.
  int StartStalledDump(const std::string& db, test::Pipe& out, std::string* dumped) {
    const int pid =
        StartTool({"dump", db}, "", absl::StrCat("/dev/fd/", out.write_fd()), Path("dump.stderr"));
    out.CloseWrite();
    char first = 0;
    absl::StatusOr<size_t> n = 0;
    if (tools::WaitReadable(out.read_fd(),
                            std::chrono::steady_clock::now() + std::chrono::seconds(60))) {
      n = tools::ReadSome(out.read_fd(), &first, 1);
    }
    if (!n.ok() || *n != 1) {
      ADD_FAILURE() << "dump wrote nothing: " << ReadFile(Path("dump.stderr"));
      return -1;
    }
    dumped->assign(1, first);
    return pid;
  }

  // Reads the rest of the dump that StartStalledDump began, checks its exit and size, and parses
  // its lines of `fields` TSV fields (3: a cache's, whose expiries must all be "never").
  Content FinishStalledDump(int pid, test::Pipe& out, std::string dumped, size_t fields) {
    dumped += out.ReadAll(std::chrono::seconds(120));
    EXPECT_EQ(test::WaitChild(pid), 0) << ReadFile(Path("dump.stderr"));
    EXPECT_GT(dumped.size(), (4u << 20)) << "too small to keep dump from ending early";
    Content content;
    for (const std::string& line :
         std::vector<std::string>(absl::StrSplit(dumped, '\n', absl::SkipEmpty()))) {
      std::vector<std::string> f = absl::StrSplit(line, '\t');
      if (f.size() != fields || (fields == 3 && f[2] != "never")) {
        ADD_FAILURE() << "not a line of the dump: " << line;
        continue;
      }
      EXPECT_TRUE(content.emplace(f[0], f[1]).second) << "listed twice: " << f[0];
    }
    return content;
  }

  // Every key and value of the database, read through the library.
  static Content ReadContent(const std::string& path) {
    Content content;
    Options options;
    options.create_if_missing = false;
    auto db = DB::Open(path, options);
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return content;
    auto read = (*db)->BeginRead();
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok()) return content;
    EXPECT_OK(read->ForEach([&](std::string_view k, std::string_view v) {
      content.emplace(std::string(k), std::string(v));
      return true;
    }));
    return content;
  }

  static void Write(const std::string& path, const Content& content) {
    auto db = DB::Open(path);
    ASSERT_OK(db);
    auto txn = (*db)->BeginWrite();
    ASSERT_OK(txn);
    for (const auto& [k, v] : content) ASSERT_OK(txn->Put(k, v));
    ASSERT_OK(txn->Commit());
  }

  // A database with many overwrites and deletes; returns what it holds.
  static Content MakeChurnedDatabase(const std::string& path, int keys, int rounds,
                                     const Options& options = Options()) {
    Content model;
    auto db = DB::Open(path, options);
    EXPECT_OK(db);
    if (!db.ok()) return model;
    std::mt19937_64 rng(7);
    for (int round = 0; round < rounds; ++round) {
      auto txn = (*db)->BeginWrite();
      EXPECT_OK(txn);
      for (int i = 0; i < keys; ++i) {
        std::string key = absl::StrCat("key/", i);
        if (rng() % 5 == 0) {
          EXPECT_OK(txn->Delete(key));
          model.erase(key);
        } else {
          std::string value = absl::StrCat("value ", round, " of ", i, " ",
                                           std::string(40 + rng() % 80, 'a' + rng() % 26));
          EXPECT_OK(txn->Put(key, value));
          model[key] = value;
        }
      }
      EXPECT_OK(txn->Commit());
    }
    EXPECT_OK((*db)->Checkpoint());
    return model;
  }

  // Names in the directory that look like compaction or backup temporary files.
  std::vector<std::string> TempFiles() const {
    std::vector<std::string> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      const std::string name = entry.path().filename().string();
      if (name.find(".compact-") != std::string::npos ||
          name.find(".backup-") != std::string::npos) {
        out.push_back(name);
      }
    }
    return out;
  }

  TempDir dir_;
};

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Help and usage.

TEST_F(ToolTest, HelpEverywhere) {
  ToolResult top = Run({"--help"});
  EXPECT_EQ(top.status, 0) << top.err;
  for (const char* name : {"stat", "get", "put", "del", "dump", "load", "check", "compact",
                           "backup", "demo", "bench"}) {
    EXPECT_TRUE(Contains(top.out, absl::StrCat("  ", name, " "))) << name << " missing:\n"
                                                                  << top.out;
    ToolResult sub = Run({name, "--help"});
    EXPECT_EQ(sub.status, 0) << name << ": " << sub.err;
    EXPECT_TRUE(Contains(sub.out, absl::StrCat("Usage: mapkv ", name))) << sub.out;
    EXPECT_TRUE(Contains(sub.out, "Exit status")) << name << ":\n" << sub.out;
  }
  for (const char* name : {"compact", "load", "backup"}) {
    ToolResult via_help = Run({"help", name});
    EXPECT_EQ(via_help.status, 0);
    EXPECT_EQ(via_help.out, Run({name, "--help"}).out)
        << "`mapkv help " << name << "` differs from --help";
  }
  EXPECT_TRUE(Contains(top.out, "Exit status")) << top.out;
  EXPECT_TRUE(Contains(Run({"help", "compact"}).out, "atomic")) << "compaction's safety story";
  const std::string backup = Run({"help", "backup"}).out;
  for (const char* told : {"one commit", "snapshot", "format version 1", "writers wait", "--force",
                           "Restoring", "COPY.backup-PID-RANDOM.tmp"}) {
    EXPECT_TRUE(Contains(backup, told)) << told << " missing:\n" << backup;
  }
}

TEST_F(ToolTest, UsageErrorsExitTwo) {
  const std::string db = Path("u.mapkv");
  ASSERT_EQ(Run({"put", db, "k", "v"}).status, 0);
  const std::vector<std::vector<std::string>> bad = {
      {},                                  // no command
      {"frobnicate"},                      // unknown command
      {"help", "frobnicate"},              // unknown help topic
      {"get", db},                         // missing KEY
      {"get", db, "k", "extra"},           // one argument too many
      {"get", db, ""},                     // empty key
      {"get", "--escaped", db, "bad\\q"},  // unknown escape
      {"put", db, "k"},                    // missing VALUE
      {"dump", "--format", "xml", db},     // unknown format
      {"stat", "--no-such-flag", db},      // unknown flag
      {"compact"},                         // missing DB
      {"backup", db},                      // missing COPY
      {"backup", db, db},                  // COPY is DB
      {"bench", "--keys", "many"},         // not a number
  };
  for (const auto& args : bad) {
    ToolResult r = Run(args);
    EXPECT_EQ(r.status, 2) << absl::StrJoin(args, " ") << "\nstdout: " << r.out
                           << "\nstderr: " << r.err;
    EXPECT_FALSE(r.err.empty()) << absl::StrJoin(args, " ");
  }
  EXPECT_EQ(ReadContent(db), (Content{{"k", "v"}})) << "a usage error changed the database";
}

// ---------------------------------------------------------------------------------------------
// get, put, del.

TEST_F(ToolTest, PutGetDel) {
  const std::string db = Path("kv.mapkv");
  ToolResult put = Run({"put", db, "user/42", "Ada"});
  ASSERT_EQ(put.status, 0) << put.err;
  EXPECT_TRUE(put.out.empty());
  ToolResult get = Run({"get", db, "user/42"});
  EXPECT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(get.out, "Ada") << "not a terminal: the exact bytes, no line feed";

  ToolResult missing = Run({"get", db, "user/43"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(missing.out.empty());
  EXPECT_TRUE(Contains(missing.err, db) && Contains(missing.err, "user/43")) << missing.err;

  EXPECT_EQ(Run({"put", db, "user/42", "Grace"}).status, 0);
  EXPECT_EQ(Run({"get", db, "user/42"}).out, "Grace");
  EXPECT_EQ(Run({"get", db, "--", "-dash"}).status, 1) << "-- lets a key start with '-'";
  EXPECT_EQ(Run({"put", db, "--", "-dash", "d"}).status, 0);
  EXPECT_EQ(Run({"get", db, "--", "-dash"}).out, "d");

  EXPECT_EQ(Run({"del", db, "user/42"}).status, 0);
  EXPECT_EQ(Run({"get", db, "user/42"}).status, 1);
  ToolResult again = Run({"del", db, "user/42"});
  EXPECT_EQ(again.status, 1) << "deleting an absent key";
  EXPECT_TRUE(Contains(again.err, "user/42")) << again.err;
  EXPECT_EQ(Run({"del", "-f", db, "user/42"}).status, 0);
  EXPECT_EQ(ReadContent(db), (Content{{"-dash", "d"}}));
}

TEST_F(ToolTest, BinaryValuesThroughStdinAndEscapes) {
  const std::string db = Path("bin.mapkv");
  std::string value;
  for (int b = 0; b < 256; ++b) value.push_back(static_cast<char>(b));
  ToolResult put = Run({"put", db, "blob", "-"}, value);
  ASSERT_EQ(put.status, 0) << put.err;
  EXPECT_EQ(Run({"get", db, "blob"}).out, value);
  ToolResult escaped = Run({"get", "--escaped", db, "blob"});
  EXPECT_EQ(escaped.status, 0);
  EXPECT_TRUE(absl::StartsWith(escaped.out, "\\x00\\x01")) << escaped.out;
  EXPECT_EQ(escaped.out.find('\t'), std::string::npos);

  // An escaped key and value on the command line hold bytes a shell argument cannot.
  ASSERT_EQ(Run({"put", "--escaped", db, "nul\\x00key", "tab\\there\\nnewline"}).status, 0);
  EXPECT_EQ(ReadContent(db).at(std::string("nul\0key", 7)), "tab\there\nnewline");
  EXPECT_EQ(Run({"get", "--escaped", db, "nul\\0key"}).out, "tab\\there\\nnewline\n");
  EXPECT_EQ(Run({"del", "--escaped", db, "nul\\x00key"}).status, 0);
  EXPECT_EQ(ReadContent(db).size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Files that are missing or not databases.

TEST_F(ToolTest, MissingFileExitsFourNamingIt) {
  const std::string missing = Path("nowhere/absent.mapkv");
  const std::vector<std::vector<std::string>> commands = {
      {"stat", missing},
      {"get", missing, "k"},
      {"del", missing, "k"},
      {"dump", missing},
      {"check", missing},
      {"compact", missing},
      {"backup", missing, Path("copy.mapkv")},
      {"load", Path("x.mapkv"), Path("no-such-input.tsv")},
  };
  for (const auto& args : commands) {
    ToolResult r = Run(args);
    EXPECT_EQ(r.status, 4) << absl::StrJoin(args, " ") << ": " << r.err;
    const std::string& named = args[0] == "load" ? args[2] : missing;
    EXPECT_TRUE(Contains(r.err, named)) << "the message must name the file: " << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, absl::StrCat("mapkv ", args[0], ": "))) << r.err;
  }
  EXPECT_FALSE(test::FileExists(missing));
  EXPECT_FALSE(test::FileExists(Path("copy.mapkv"))) << "a backup of nothing wrote a copy";
}

TEST_F(ToolTest, NotADatabase) {
  const std::string text = Path("notes.txt");
  ASSERT_TRUE(WriteFile(text, std::string(8192, 'x')));
  ToolResult get = Run({"get", text, "k"});
  EXPECT_EQ(get.status, 4);
  EXPECT_TRUE(Contains(get.err, text) && Contains(get.err, "not a mapkv")) << get.err;
  ToolResult check = Run({"check", text});
  EXPECT_EQ(check.status, 3) << "a file that is not a database is a finding of check";
  EXPECT_TRUE(Contains(check.err, text)) << check.err;
  EXPECT_EQ(ReadFile(text), std::string(8192, 'x')) << "the tool wrote to a foreign file";
}

// A cache's file (mapkv::Cache): stat shows its statistics, check verifies it, get and dump read
// it as the cache does (expired values absent unless asked for), compact drops its expired values.
TEST_F(ToolTest, CacheFile) {
  const std::string cache_path = Path("cache.mapkv");
  {
    CacheOptions options;
    // An hour ago: values with a one-second ttl are expired by the real clock the tool uses.
    const int64_t hour_ago = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count() -
                             3'600'000;
    options.now_unix_ms = [hour_ago] { return hour_ago; };
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(cache_path, options));
    for (int i = 0; i < 10; ++i) {
      ASSERT_OK(cache->Put(absl::StrCat("k", i), absl::StrCat("v", i),
                           i < 4 ? std::chrono::seconds(1) : Ttl{0}));
    }
    for (int i = 0; i < 10; ++i) EXPECT_OK(cache->Get(absl::StrCat("k", i)));
    EXPECT_STATUS(cache->Get("missing"), absl::StatusCode::kNotFound);
  }
  ToolResult text = Run({"stat", cache_path});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, "format version   3 (a cache)")) << text.out;
  EXPECT_TRUE(Contains(text.out, "10 hits, 1 miss (")) << text.out;
  ToolResult json = Run({"stat", "--json", cache_path});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_TRUE(Contains(json.out, "\"kind\":\"cache\"")) << json.out;
  EXPECT_TRUE(Contains(json.out, "\"cache\":{\"hits\":10,\"misses\":1,")) << json.out;
  EXPECT_EQ(Run({"check", cache_path}).status, 0);

  ToolResult get = Run({"get", cache_path, "k5"});
  EXPECT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(get.out, "v5");
  ToolResult expired = Run({"get", cache_path, "k0"});
  EXPECT_EQ(expired.status, 1);
  EXPECT_TRUE(Contains(expired.err, "expired at ") && Contains(expired.err, "--expired"))
      << expired.err;
  EXPECT_EQ(Run({"get", "--expired", cache_path, "k0"}).out, "v0");
  // Reading through the tool counts no hits or misses.
  EXPECT_TRUE(Contains(Run({"stat", "--json", cache_path}).out, "\"hits\":10,\"misses\":1,"));

  ToolResult dump = Run({"dump", cache_path});
  EXPECT_EQ(dump.status, 0) << dump.err;
  EXPECT_EQ(std::count(dump.out.begin(), dump.out.end(), '\n'), 6) << dump.out;
  EXPECT_TRUE(Contains(dump.out, "k9\tv9\tnever\n")) << dump.out;
  EXPECT_TRUE(Contains(dump.err, "4 expired entries (--expired lists them)")) << dump.err;
  ToolResult all = Run({"dump", "--expired", "--format", "jsonl", cache_path});
  EXPECT_EQ(std::count(all.out.begin(), all.out.end(), '\n'), 10) << all.out;
  EXPECT_TRUE(Contains(all.out, "{\"key\":\"k0\",\"value\":\"v0\",\"expires\":\"20")) << all.out;
  EXPECT_TRUE(Contains(all.out, "\"expires\":\"never\"}")) << all.out;

  // A cache with a capacity (a ring) takes writes from the tool as from Cache::Put.
  ASSERT_EQ(Run({"put", "--ttl", "1h", cache_path, "new", "value"}).status, 0);
  ASSERT_EQ(Run({"load", cache_path}, "loaded\tvalue\tnever\n").status, 0);
  ASSERT_EQ(Run({"del", cache_path, "k8"}).status, 0);

  ToolResult compact = Run({"compact", cache_path});
  ASSERT_EQ(compact.status, 0) << compact.err;
  EXPECT_TRUE(Contains(compact.out, " 7 keys") && Contains(compact.out, "dropped 4 cache entries"))
      << compact.out;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(cache_path));
  EXPECT_STATUS(cache->Get("k0"), absl::StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(cache->Get("k9"), "v9");
  EXPECT_OK_AND_EQ(cache->Get("new"), "value");
  EXPECT_OK_AND_EQ(cache->Get("loaded"), "value");
  EXPECT_STATUS(cache->Get("k8"), absl::StatusCode::kNotFound);
  EXPECT_TRUE(cache->GetStats().db.is_cache);
}

// ---------------------------------------------------------------------------------------------
// stat.

TEST_F(ToolTest, StatTextAndJson) {
  const std::string db = Path("s.mapkv");
  MakeChurnedDatabase(db, 200, 5);
  const size_t keys = ReadContent(db).size();
  ToolResult text = Run({"stat", db});
  ASSERT_EQ(text.status, 0) << text.err;
  for (const char* row : {"keys", "file size", "live", "garbage", "index", "checkpoint", "open by",
                          "format version"}) {
    EXPECT_TRUE(Contains(text.out, row)) << row << " missing:\n" << text.out;
  }
  EXPECT_TRUE(Contains(text.out, absl::StrCat("keys             ", keys, "\n"))) << text.out;

  ToolResult json = Run({"stat", "--json", db});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_TRUE(absl::StartsWith(json.out, "{") && absl::EndsWith(json.out, "}\n")) << json.out;
  EXPECT_TRUE(Contains(json.out, absl::StrCat("\"keys\":", keys, ","))) << json.out;
  EXPECT_TRUE(Contains(json.out, "\"open_handles\":0,")) << json.out;
  EXPECT_TRUE(Contains(json.out, "\"format_version\":5,")) << json.out;
  EXPECT_FALSE(Contains(json.out, "\"garbage_bytes\":0,")) << "overwrites leave garbage";
  EXPECT_FALSE(Contains(json.out, "\"checkpoint_age_s\":null")) << json.out;

  // Another process's handle is counted.
  auto holder = DB::Open(db);
  ASSERT_OK(holder);
  EXPECT_TRUE(Contains(Run({"stat", "--json", db}).out, "\"open_handles\":1,"));
}

// A database of version 5 that the cleaner turned over a few times: its size counts the holes
// below the log's start, and `on disk` says what its blocks take, as fstat does.
TEST_F(ToolTest, StatShowsTheDiskACleanedFileTakes) {
  const std::string db = Path("cleaned.mapkv");
  MakeChurnedDatabase(db, 3000, 40);
  ToolResult json = Run({"stat", "--json", db});
  ASSERT_EQ(json.status, 0) << json.err;
  ASSERT_OK_AND_ASSIGN(internal::FileInfo info, internal::StatFile(db));
  constexpr std::string_view kField = "\"disk_bytes\":";
  const size_t at = json.out.find(kField);
  ASSERT_NE(at, std::string::npos) << json.out;
  uint64_t disk_bytes = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      json.out.substr(at + kField.size(), json.out.find(',', at) - at - kField.size()),
      &disk_bytes))
      << json.out;
  EXPECT_GT(disk_bytes, 0u);
  EXPECT_LE(disk_bytes, info.size);
  ToolResult text = Run({"stat", db});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, "on disk          ")) << text.out;
#ifndef _WIN32  // Windows gives no blocks back: WithoutHolesTheCleanerStopsAtItsFirstGiveBack
  // Windows' two ways of asking (by name, by handle) differ under wine; fstat is fstat.
  EXPECT_EQ(disk_bytes, info.allocated);
  EXPECT_LT(info.allocated * 2, info.size) << "the cleaner gave most of the file back";
  EXPECT_TRUE(Contains(text.out, "allocated (the file's size counts the holes below the log's"))
      << text.out;
#endif
  EXPECT_TRUE(Contains(text.out, "of it copies by the cleaner and compactions")) << text.out;
}

// ---------------------------------------------------------------------------------------------
// dump and load.

// Keys and values that hold every byte value, in every position that matters to the formats: a
// key of each single byte, a key starting with '#', values of each byte, all 256 bytes in a row,
// invalid UTF-8, valid multi-byte UTF-8, and an empty value.
Content EveryByteContent() {
  Content content;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    content[byte] = byte;
    content[absl::StrCat("k", byte, "k")] = absl::StrCat(byte, "v", byte);
  }
  content["all"] = all;
  content[all] = all;
  content["#comment-like"] = "#";
  content["empty"] = "";
  content["utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"] = "caf\xc3\xa9";
  content["bad utf8 \xc3\x28"] = "\xed\xa0\x80 surrogate, \xc0\xaf overlong";
  content["line\r\n"] = "\r\n\t\\\"";
  return content;
}

TEST_F(ToolTest, DumpLoadRoundTripEveryByte) {
  const Content content = EveryByteContent();
  const std::string source = Path("source.mapkv");
  Write(source, content);
  ASSERT_EQ(ReadContent(source), content);
  for (const char* format : {"tsv", "jsonl"}) {
    SCOPED_TRACE(format);
    ToolResult dump = Run({"dump", "--format", format, source});
    ASSERT_EQ(dump.status, 0) << dump.err;
    EXPECT_TRUE(dump.err.empty()) << "no progress bar when stderr is not a terminal: " << dump.err;
    EXPECT_EQ(std::count(dump.out.begin(), dump.out.end(), '\n'), static_cast<long>(content.size()))
        << "one record a line";
    if (std::string_view(format) == "jsonl") {
      EXPECT_TRUE(Contains(dump.out, "\"key_base64\":")) << "invalid UTF-8 goes as base64";
      EXPECT_TRUE(Contains(dump.out, "{\"key\":\"all\",\"value_base64\":"))
          << dump.out.substr(0, 300);
    } else {
      EXPECT_TRUE(Contains(dump.out, "\\x23comment-like\t#\n")) << "a leading # is escaped";
    }
    const std::string file = Path(absl::StrCat("dump.", format));
    ASSERT_TRUE(WriteFile(file, dump.out));
    // From a file and from stdin, into new databases.
    const std::string from_file = Path(absl::StrCat("from-file.", format, ".mapkv"));
    ToolResult load = Run({"load", "--format", format, from_file, file});
    ASSERT_EQ(load.status, 0) << load.err;
    EXPECT_TRUE(load.err.empty()) << load.err;
    EXPECT_TRUE(Contains(load.out, absl::StrCat("loaded ", content.size(), " records")))
        << load.out;
    EXPECT_EQ(ReadContent(from_file), content);
    const std::string from_stdin = Path(absl::StrCat("from-stdin.", format, ".mapkv"));
    ASSERT_EQ(Run({"load", "--format", format, from_stdin, "-"}, dump.out).status, 0);
    EXPECT_EQ(ReadContent(from_stdin), content);
    // And the second dump is the first, up to order.
    ToolResult again = Run({"dump", "--format", format, from_file});
    std::vector<std::string> a = absl::StrSplit(dump.out, '\n');
    std::vector<std::string> b = absl::StrSplit(again.out, '\n');
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);
  }
}

TEST_F(ToolTest, LoadAcceptsHandWrittenInput) {
  const std::string db = Path("hand.mapkv");
  const std::string tsv =
      "# a comment\n\nplain\tvalue with spaces\r\nesc\\taped\tone\\ttwo\\\\three\\0\nplain\tlast "
      "wins\n";
  ToolResult load = Run({"load", "--comments", db}, tsv);
  ASSERT_EQ(load.status, 0) << load.err;
  EXPECT_TRUE(Contains(load.out, "loaded 3 records (")) << load.out;
  EXPECT_TRUE(Contains(load.out, "skipped 1 comment line, 1 blank line\n")) << load.out;
  EXPECT_EQ(ReadContent(db),
            (Content{{"plain", "last wins"}, {"esc\taped", std::string("one\ttwo\\three\0", 14)}}));
  const std::string jsonl =
      " {\"value\": \"\\u00e9\\ud83d\\ude00\\n\", \"key\": \"j\\/1\"}\n\n"
      "{\"key_base64\":\"AP8=\",\"value_base64\":\"\"}\n";
  ASSERT_EQ(Run({"load", "--format", "jsonl", db}, jsonl).status, 0);
  Content content = ReadContent(db);
  EXPECT_EQ(content.at("j/1"), "\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(content.at(std::string("\0\xff", 2)), "");

  // The sample data set loads as it is.
  const std::string sample = absl::StrCat(MAPKV_SOURCE_DIR, "/data/iso_codes.tsv");
  if (test::FileExists(sample)) {
    const std::string iso = Path("iso.mapkv");
    ToolResult r = Run({"load", "--comments", iso, sample});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(ReadContent(iso).size(), 1245u);
    EXPECT_EQ(Run({"get", iso, "country/FR"}).out.substr(0, 6), "France");
  }
}

TEST_F(ToolTest, LoadRejectsMalformedInputAndLoadsNothing) {
  const std::string db = Path("strict.mapkv");
  ASSERT_EQ(Run({"put", db, "before", "1"}).status, 0);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"tsv", "good\t1\nno tab here\n"},
      {"tsv", "good\t1\n\tempty key\n"},
      {"tsv", "good\t1\nbad\\qescape\tv\n"},
      {"tsv", "good\t1\nk\tv\tthird field\n"},
      {"jsonl", "{\"key\":\"good\",\"value\":\"1\"}\n{\"key\":\"k\"}\n"},
      {"jsonl", "{\"key\":\"good\",\"value\":\"1\"}\n{\"key\":\"k\",\"value\":7}\n"},
      {"jsonl", "{\"key\":\"good\",\"value\":\"1\"}\n{\"key\":\"k\",\"value\":\"\\udc00\"}\n"},
      {"jsonl", "{\"key\":\"good\",\"value\":\"1\"}\n{\"key_base64\":\"!!\",\"value\":\"v\"}\n"},
      {"jsonl", "{\"key\":\"good\",\"value\":\"1\"}\n[1,2]\n"},
  };
  for (const auto& [format, input] : bad) {
    ToolResult r = Run({"load", "--format", format, db}, input);
    EXPECT_EQ(r.status, 4) << input;
    EXPECT_TRUE(Contains(r.err, "stdin:2:")) << "names the input and line: " << r.err;
    EXPECT_TRUE(Contains(r.err, "nothing was loaded")) << r.err;
  }
  EXPECT_EQ(ReadContent(db), (Content{{"before", "1"}})) << "one transaction: all or nothing";
  // With --batch, the batches before the bad line stay.
  ToolResult batched = Run({"load", "--batch", "1", db}, "a\t1\nb\t2\nbroken\n");
  EXPECT_EQ(batched.status, 4);
  EXPECT_TRUE(Contains(batched.err, "first 2 records")) << batched.err;
  EXPECT_EQ(ReadContent(db).size(), 3u);
}

// A line without a line feed is read only as far as a record could go: the longest key and value
// in their longest escapes. Past that, load stops, naming the input and the line, without reading
// the rest of the line and without loading anything. With values of up to 1 MiB (--max-value),
// the limit is a few MiB and so is this input; a value over the limit on a line under it is
// refused too.
TEST_F(ToolTest, LoadRefusesALineLongerThanAnyRecord) {
  const std::string db = Path("bounded.mapkv");
  ASSERT_EQ(Run({"put", db, "before", "1"}).status, 0);
  const std::string max_value = "--max-value=1048576";
  // TSV escapes a byte in at most 4 (\xHH): 4 * (65535 + 1 MiB) bytes and some, under 4.5 MiB.
  const std::string huge = absl::StrCat("good\t1\nhuge\t", std::string(9 << 19, 'v'));
  ToolResult r = Run({"load", max_value, db}, huge);
  EXPECT_EQ(r.status, 4) << r.err.substr(0, 500);
  EXPECT_TRUE(Contains(r.err, "stdin:2:") && Contains(r.err, "a line longer than"))
      << "names the input, the line and what is wrong: " << r.err.substr(0, 500);
  EXPECT_TRUE(Contains(r.err, "nothing was loaded")) << r.err.substr(0, 500);

  const std::string over = absl::StrCat("good\t1\nover\t", std::string((1 << 20) + 1, 'v'));
  r = Run({"load", max_value, db}, over);
  EXPECT_EQ(r.status, 4) << r.err.substr(0, 500);
  EXPECT_TRUE(Contains(r.err, "stdin:2:") && Contains(r.err, "over the limit of 1048576"))
      << r.err.substr(0, 500);
  const Content content = ReadContent(db);
  EXPECT_TRUE(content == (Content{{"before", "1"}})) << content.size() << " keys";
}

// ---------------------------------------------------------------------------------------------
// check.

TEST_F(ToolTest, CheckCleanAndDamaged) {
  const std::string db = Path("c.mapkv");
  MakeChurnedDatabase(db, 100, 3);
  Write(db, {{"victim", "DAMAGE-ME-PLEASE-0123456789"}});
  ToolResult clean = Run({"check", db});
  EXPECT_EQ(clean.status, 0) << clean.out << clean.err;
  EXPECT_TRUE(Contains(clean.out, "ok")) << clean.out;

  std::string bytes = ReadFile(db);
  const size_t at = bytes.find("DAMAGE-ME-PLEASE");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] ^= 0x20;
  ASSERT_TRUE(WriteFile(db, bytes));
  ToolResult damaged = Run({"check", db});
  EXPECT_EQ(damaged.status, 3) << damaged.out << damaged.err;
  EXPECT_TRUE(Contains(damaged.out, "offset ")) << damaged.out;
  EXPECT_TRUE(Contains(damaged.err, db) && Contains(damaged.err, "problem")) << damaged.err;

  // Neither dump nor compact passes the damage on.
  EXPECT_EQ(Run({"dump", db}).status, 3);
  ToolResult compact = Run({"compact", db});
  EXPECT_EQ(compact.status, 4) << compact.err;
  EXPECT_EQ(ReadFile(db).size(), bytes.size());
  EXPECT_TRUE(TempFiles().empty()) << "a failed compaction removes its temporary file";
}

// ---------------------------------------------------------------------------------------------
// compact.

TEST_F(ToolTest, CompactShrinksKeepsContentAndPassesCheck) {
  const std::string db = Path("big.mapkv");
  Options no_cleaner;  // the log keeps every round: what the offline compaction is for
  no_cleaner.compact_ratio = 0;
  const Content model = MakeChurnedDatabase(db, 3000, 20, no_cleaner);
  const uint64_t before = test::FileSize(db);
  ToolResult r = Run({"compact", db});
  ASSERT_EQ(r.status, 0) << r.err;
  const uint64_t after = test::FileSize(db);
  EXPECT_LT(after * 3, before) << "20 rounds of overwrites: at least 3x smaller";
  EXPECT_TRUE(Contains(r.out, "compacted") && Contains(r.out, " -> ") && Contains(r.out, "MiB/s"))
      << r.out;
  std::string keys = absl::StrCat(model.size());
  if (keys.size() > 3) keys.insert(keys.size() - 3, ",");
  EXPECT_TRUE(Contains(r.out, absl::StrCat(keys, " keys"))) << r.out;
  EXPECT_EQ(ReadContent(db), model);
  ToolResult check = Run({"check", db});
  EXPECT_EQ(check.status, 0) << check.out << check.err;
  ToolResult json = Run({"stat", "--json", db});
  EXPECT_TRUE(Contains(json.out, "\"index_load\":0.")) << json.out;
  EXPECT_TRUE(Contains(json.out, "\"compactions\":1,\"bytes_written\":")) << json.out;
  EXPECT_TRUE(Contains(json.out, "\"write_amplification\":1.")) << json.out;
  EXPECT_TRUE(Contains(json.out, "\"writers_paced_kib_per_ms\":0")) << json.out;
  EXPECT_TRUE(TempFiles().empty());
  // The compacted database takes writes and a second compaction as usual.
  EXPECT_EQ(Run({"put", db, "after", "compaction"}).status, 0);
  EXPECT_EQ(Run({"compact", db}).status, 0);
  ToolResult text = Run({"stat", db});
  EXPECT_TRUE(Contains(text.out, "2 in place over the database's life")) << text.out;
  EXPECT_TRUE(Contains(text.out, "(write amplification 1.")) << text.out;
  Content expected = model;
  expected["after"] = "compaction";
  EXPECT_EQ(ReadContent(db), expected);
}

TEST_F(ToolTest, CompactToOutputLeavesSourceAlone) {
  const std::string db = Path("src.mapkv");
  const Content model = MakeChurnedDatabase(db, 2000, 10);
  const uint64_t size = test::FileSize(db);
  const std::string out = Path("out.mapkv");
  ToolResult r = Run({"compact", "--output", out, db});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::FileSize(db), size);
  EXPECT_LT(test::FileSize(out), size);
  EXPECT_EQ(ReadContent(out), model);
  EXPECT_EQ(ReadContent(db), model);
  // NEW must not exist.
  ToolResult exists = Run({"compact", "--output", out, db});
  EXPECT_EQ(exists.status, 4);
  EXPECT_TRUE(Contains(exists.err, out) && Contains(exists.err, "exists")) << exists.err;
  EXPECT_EQ(ReadContent(out), model);
}

// Holds the database open until end of file on `release`, after a byte on `ready`. Arguments: path,
// the write end of `ready`, the read end of `release`.
MAPKV_CHILD(HoldOpenChild) {
  test::ChildPipe ready = args.PipeEnd(1);
  test::ChildPipe release = args.PipeEnd(2);
  auto handle = DB::Open(args.at(0));
  CHILD_CHECK_OK(handle);
  CHILD_CHECK(ready.Write("r"));
  release.WaitByte(std::chrono::seconds(60));
  return 0;
}

// In place, a database of format version 4 is compacted while another process has it open (an
// online compaction: that process moves to the new file), except where the OS cannot rename over a
// file that a process has mapped (Windows): there compaction needs it alone. Into another file it
// reads a snapshot, beside whatever has it open.
TEST_F(ToolTest, CompactInPlaceWhileOpenElsewhere) {
  const std::string db = Path("busy.mapkv");
  const Content model = MakeChurnedDatabase(db, 500, 4);
  ASSERT_OK_AND_ASSIGN(const internal::FileInfo st_before, internal::StatFile(db));
  test::Pipe ready, release;
  const int holder =
      test::StartChild("HoldOpenChild", {db, ready.WriteEndArg(), release.ReadEndArg()});
  ready.CloseWrite();
  ASSERT_TRUE(ready.WaitByte()) << "the holder did not open the database";

  ToolResult output = Run({"compact", "--output", Path("o.mapkv"), db});
  EXPECT_EQ(output.status, 0) << output.err;
  EXPECT_EQ(ReadContent(Path("o.mapkv")), model);
  ASSERT_OK_AND_ASSIGN(internal::FileInfo st_after, internal::StatFile(db));
  EXPECT_EQ(st_after.inode, st_before.inode) << "the file was replaced";

  ToolResult in_place = Run({"compact", db});
  ASSERT_OK_AND_ASSIGN(st_after, internal::StatFile(db));
  if (internal::ReplaceFailsWhileMapped()) {
    EXPECT_EQ(in_place.status, 3) << in_place.err;
    EXPECT_TRUE(Contains(in_place.err, "open by 1 other handle")) << in_place.err;
    EXPECT_TRUE(Contains(in_place.err, db)) << in_place.err;
    EXPECT_EQ(st_after.inode, st_before.inode) << "the file was replaced";
    EXPECT_EQ(st_after.size, st_before.size);
  } else {
    EXPECT_EQ(in_place.status, 0) << in_place.err;
    EXPECT_NE(st_after.inode, st_before.inode) << "the file was not replaced";
    EXPECT_LE(st_after.size, st_before.size);
  }
  EXPECT_EQ(ReadContent(db), model);
  EXPECT_TRUE(TempFiles().empty());

  release.Write("x");
  EXPECT_EQ(test::WaitChild(holder), 0);
  EXPECT_EQ(ReadContent(db), model);
  EXPECT_EQ(Run({"compact", db}).status, 0) << "once the holder is gone";
  EXPECT_EQ(ReadContent(db), model);
}

TEST_F(ToolTest, CompactFailingForSpaceLeavesOriginal) {
  if (!tools::HasFileSizeLimit()) {
    GTEST_SKIP() << "simulates a full disk with RLIMIT_FSIZE, which this platform does not have";
  }
  const std::string db = Path("full.mapkv");
  const Content model = MakeChurnedDatabase(db, 2000, 3);
  const uint64_t size = test::FileSize(db);
  // RLIMIT_FSIZE makes every write past 512 KiB fail with EFBIG, as a full disk fails with ENOSPC.
  ToolResult r = Run({"compact", db}, {}, 512 << 10);
  EXPECT_EQ(r.status, 4) << r.out << r.err;
  EXPECT_TRUE(Contains(r.err, "unchanged")) << r.err;
  EXPECT_EQ(test::FileSize(db), size);
  EXPECT_EQ(ReadContent(db), model);
  EXPECT_TRUE(TempFiles().empty()) << "the temporary file is removed after a failure";
  EXPECT_EQ(Run({"compact", db}).status, 0);
  EXPECT_EQ(ReadContent(db), model);
}

TEST_F(ToolTest, CompactKilledAtRandomMoments) {
  const std::string db = Path("killed.mapkv");
  const Content model = MakeChurnedDatabase(db, 2500, 5);
  // How long one compaction takes here, on a copy: kills land across all of it.
  const std::string copy = Path("timing.mapkv");
  ASSERT_TRUE(WriteFile(copy, ReadFile(db)));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(Run({"compact", copy}).status, 0);
  const int64_t full_us = std::max<int64_t>(test::Since(start).count(), 1000);
  std::filesystem::remove(copy);

  const int kills = static_cast<int>(test::EnvInt("MAPKV_TOOL_KILLS", 50));
  std::mt19937_64 rng(test::EnvInt("MAPKV_TOOL_SEED", 12345));
  int replaced = 0, leftovers_seen = 0;
  for (int i = 0; i < kills; ++i) {
    ASSERT_OK_AND_ASSIGN(const internal::FileInfo before, internal::StatFile(db));
    const int pid = StartTool({"compact", db}, "", Path("kill.stdout"), Path("kill.stderr"));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (full_us * 3 / 2)));
    test::KillChild(pid);
    absl::StatusOr<internal::FileInfo> after = internal::StatFile(db);
    ASSERT_OK(after) << "kill " << i << ": the database is gone";
    if (after->inode != before.inode || after->device != before.device) ++replaced;
    if (!TempFiles().empty()) ++leftovers_seen;
    ASSERT_EQ(ReadContent(db), model) << "kill " << i << " after " << full_us << " us";
  }
  std::printf("%d kills over a %lld us compaction: %d after the rename, %d left a temp file\n",
              kills, static_cast<long long>(full_us), replaced, leftovers_seen);
  const size_t leftovers_now = TempFiles().size();
  ToolResult last = Run({"compact", db});
  ASSERT_EQ(last.status, 0) << last.err;
  if (leftovers_now > 0) {
    EXPECT_TRUE(Contains(last.err, "left by an interrupted compaction")) << last.err;
  }
  EXPECT_TRUE(TempFiles().empty()) << "the next compaction removes every leftover";
  EXPECT_EQ(ReadContent(db), model);
  ToolResult check = Run({"check", db});
  EXPECT_EQ(check.status, 0) << check.out << check.err;
}

// A process whose Open waits while a compaction holds the file must end up in the compacted file.
// Today it does not: it opened the old file by name before it began to wait, and once the
// compaction has renamed the new file into place and closed the old one, that Open proceeds on
// the old, unlinked file, so what it commits is lost (`put` exits 0, a later `get` finds
// nothing). The fix belongs in DB::Open (after waiting for the open lock, check that the path
// still names the file it opened, and open again if not); enable this test with it.
TEST_F(ToolTest, OpenerWaitingDuringCompactionWritesToTheNewFile) {
  const std::string db = Path("waited.mapkv");
  const Content model = MakeChurnedDatabase(db, 20000, 6);
  const int compaction =
      StartTool({"compact", db}, "", Path("compact.stdout"), Path("compact.stderr"));
  // The temporary file appears once the compaction holds the database alone.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (TempFiles().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_FALSE(TempFiles().empty()) << "the compaction never started copying";
  ToolResult put = Run({"put", db, "written", "during compaction"});
  EXPECT_EQ(put.status, 0) << put.err;
  const int compacted = test::WaitChild(compaction);
  if (internal::ReplaceFailsWhileMapped() && compacted != 0) {
    // Windows: an opener that mapped the old file before the rename keeps it from being
    // replaced, so the compaction gives up and leaves the database as it was, the put in it. (One
    // that comes later opens the new file, as on Linux.)
    EXPECT_EQ(compacted, 4) << ReadFile(Path("compact.stderr"));
    EXPECT_TRUE(Contains(ReadFile(Path("compact.stderr")), "is unchanged"));
  } else {
    EXPECT_EQ(compacted, 0) << ReadFile(Path("compact.stderr"));
  }
  ToolResult get = Run({"get", db, "written"});
  EXPECT_EQ(get.status, 0) << "the put went to the replaced file: " << get.err;
  EXPECT_EQ(get.out, "during compaction");
}

TEST_F(ToolTest, CompactLibraryCallReportsProgress) {
  const std::string db = Path("lib.mapkv");
  const Content model = MakeChurnedDatabase(db, 10000, 2);
  std::vector<CompactProgress> reports;
  CompactOptions options;
  options.progress = [&](const CompactProgress& p) { reports.push_back(p); };
  absl::StatusOr<CompactResult> result = Compact(db, "", options);
  ASSERT_OK(result);
  EXPECT_TRUE(result->in_place);
  EXPECT_EQ(result->keys, model.size());
  EXPECT_LT(result->size_after, result->size_before);
  ASSERT_GE(reports.size(), 3u);
  EXPECT_EQ(reports.front().keys_done, 0u);
  EXPECT_EQ(reports.front().keys_total, model.size());
  EXPECT_EQ(reports.back().phase, CompactProgress::Phase::kReplace);
  for (size_t i = 1; i < reports.size(); ++i) {
    EXPECT_GE(reports[i].keys_done, reports[i - 1].keys_done);
  }
  EXPECT_EQ(ReadContent(db), model);
  {
    // The new file is sized for its content: not doubled by a growth step past a short estimate.
    auto compacted = DB::Open(db);
    ASSERT_OK(compacted);
    const Stats stats = (*compacted)->GetStats();
    constexpr uint64_t kMiB = 1 << 20;
    EXPECT_LE(stats.file_size, (stats.log_bytes + kMiB - 1) / kMiB * kMiB + kMiB)
        << "log " << stats.log_bytes;
    EXPECT_LE(stats.index_load, 0.5);
    EXPECT_GE(stats.index_load, 0.25) << "an index sized for the live keys";
  }
  // A destination naming the source is compaction in place; another that exists is refused
  // before anything is written.
  ASSERT_OK(Compact(db, db));
  EXPECT_EQ(ReadContent(db), model);
  ASSERT_TRUE(WriteFile(Path("taken"), "x"));
  EXPECT_STATUS(Compact(db, Path("taken")).status(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(Path("taken")), "x");
}

// ---------------------------------------------------------------------------------------------
// backup, and compact --output, dump and check of a database that another process writes.

TEST_F(ToolTest, BackupWritesACompactCopyAndRefusesWhatItMust) {
  const std::string db = Path("live.mapkv");
  Options no_cleaner;  // the source keeps its garbage: the copy must leave it behind
  no_cleaner.compact_ratio = 0;
  const Content model = MakeChurnedDatabase(db, 2000, 8, no_cleaner);
  ASSERT_OK_AND_ASSIGN(const internal::FileInfo before, internal::StatFile(db));
  const std::string copy = Path("copy.mapkv");
  ToolResult r = Run({"backup", db, copy});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, absl::StrCat("backed up ", db, " into ", copy, ": ")))
      << r.out;
  std::string keys = absl::StrCat(model.size());
  if (keys.size() > 3) keys.insert(keys.size() - 3, ",");
  EXPECT_TRUE(Contains(r.out, absl::StrCat(keys, " keys")) && Contains(r.out, "MiB/s")) << r.out;
  EXPECT_FALSE(Contains(r.out, "shared lock")) << "a version 4 database is read from a snapshot";
  EXPECT_EQ(ReadContent(copy), model);
  {
    Options existing;
    existing.create_if_missing = false;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> source, DB::Open(db, existing));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> copied, DB::Open(copy, existing));
    EXPECT_GT(source->GetStats().garbage_bytes, 1u << 20) << "8 rounds of overwrites";
    EXPECT_LT(copied->GetStats().garbage_bytes, 4096u) << "garbage copied";
    EXPECT_LT(copied->GetStats().log_bytes * 2, source->GetStats().log_bytes);
  }
  EXPECT_EQ(Run({"check", copy}).status, 0);
  ASSERT_OK_AND_ASSIGN(const internal::FileInfo after, internal::StatFile(db));
  EXPECT_TRUE(internal::SameFile(before, after) && after.size == before.size);
  EXPECT_EQ(ReadContent(db), model);

  // COPY exists: refused, and left as it was.
  ASSERT_EQ(Run({"put", db, "added", "later"}).status, 0);
  ToolResult exists = Run({"backup", db, copy});
  EXPECT_EQ(exists.status, 4);
  EXPECT_TRUE(Contains(exists.err, copy) && Contains(exists.err, "exists") &&
              Contains(exists.err, "--force"))
      << exists.err;
  EXPECT_EQ(ReadContent(copy), model);
  // --force replaces it in one step.
  ToolResult forced = Run({"backup", "--force", db, copy});
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_TRUE(Contains(forced.out, "(replacing it)")) << forced.out;
  Content latest = model;
  latest["added"] = "later";
  EXPECT_EQ(ReadContent(copy), latest);
  // But not a file that is no database, nor one that a process has open.
  const std::string text = Path("notes.txt");
  ASSERT_TRUE(WriteFile(text, "keep me"));
  ToolResult foreign = Run({"backup", "--force", db, text});
  EXPECT_EQ(foreign.status, 4) << foreign.err;
  EXPECT_TRUE(Contains(foreign.err, "not a mapkv")) << foreign.err;
  EXPECT_EQ(ReadFile(text), "keep me");
  test::Pipe ready, release;
  const int holder =
      test::StartChild("HoldOpenChild", {copy, ready.WriteEndArg(), release.ReadEndArg()});
  ready.CloseWrite();
  ASSERT_TRUE(ready.WaitByte()) << "the holder did not open the copy";
  ToolResult held = Run({"backup", "--force", db, copy});
  EXPECT_EQ(held.status, 3) << held.err;
  EXPECT_TRUE(Contains(held.err, "open by 1 other handle")) << held.err;
  release.Write("x");
  EXPECT_EQ(test::WaitChild(holder), 0);
  EXPECT_EQ(ReadContent(copy), latest);

  // COPY naming DB, by any path: a usage error that writes nothing.
  std::vector<std::string> names_of_db = {db};
  std::error_code ec;
  std::filesystem::create_symlink(db, Path("link.mapkv"), ec);
  if (!ec) names_of_db.push_back(Path("link.mapkv"));
  for (const std::string& name : names_of_db) {
    ToolResult same = Run({"backup", "--force", db, name});
    EXPECT_EQ(same.status, 2) << name << ": " << same.err;
    EXPECT_TRUE(Contains(same.err, "itself")) << same.err;
  }
  ASSERT_OK_AND_ASSIGN(const internal::FileInfo still, internal::StatFile(db));
  EXPECT_TRUE(internal::SameFile(before, still));
  EXPECT_EQ(ReadContent(db), latest);

  // No directory for COPY, and a directory this user may not write (root may write any).
  const std::string nowhere = Path("no-such-dir/copy.mapkv");
  ToolResult no_dir = Run({"backup", db, nowhere});
  EXPECT_EQ(no_dir.status, 4);
  EXPECT_TRUE(absl::StartsWith(no_dir.err, absl::StrCat("mapkv backup: ", nowhere, ": ")))
      << no_dir.err;
  if (internal::CurrentUid() != 0) {
    const std::string locked = Path("locked");
    std::filesystem::create_directory(locked);
    std::filesystem::permissions(locked, std::filesystem::perms(0555),
                                 std::filesystem::perm_options::replace);
    ToolResult denied = Run({"backup", db, locked + "/copy.mapkv"});
    std::filesystem::permissions(locked, std::filesystem::perms(0755),
                                 std::filesystem::perm_options::replace);
    EXPECT_EQ(denied.status, 4) << denied.err;
    EXPECT_TRUE(Contains(denied.err, "ermission denied")) << denied.err;
    EXPECT_FALSE(test::FileExists(locked + "/copy.mapkv"));
  }
  EXPECT_TRUE(TempFiles().empty());
}

TEST_F(ToolTest, BackupFailingForSpaceOrKilledLeavesNoPartialCopy) {
  const std::string db = Path("full.mapkv");
  const Content model = MakeChurnedDatabase(db, 2000, 3);
  const std::string copy = Path("copy.mapkv");
  if (tools::HasFileSizeLimit()) {
    ToolResult r = Run({"backup", db, copy}, {}, 512 << 10);
    EXPECT_EQ(r.status, 4) << r.out << r.err;
    EXPECT_TRUE(Contains(r.err, "was not written")) << r.err;
    EXPECT_FALSE(test::FileExists(copy));
    EXPECT_TRUE(TempFiles().empty()) << "the temporary file is removed after a failure";
  }
  // What a killed backup leaves is removed by the next one, which says so.
  const std::string leftover = absl::StrCat(copy, ".backup-4242-0badf00d.tmp");
  ASSERT_TRUE(WriteFile(leftover, "the start of a copy"));
  ToolResult r = Run({"backup", db, copy});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(
      Contains(r.err, absl::StrCat("removed ", leftover, ", left by an interrupted backup")))
      << r.err;
  EXPECT_TRUE(TempFiles().empty());
  EXPECT_EQ(ReadContent(copy), model);
  EXPECT_EQ(ReadContent(db), model);
}

// A format version 1 file has no snapshots: its ReadTxn holds the shared lock, and the output
// says that its writers waited. The copy is of the current version, with the same content.
TEST_F(ToolTest, BackupOfAVersion1File) {
  const std::string golden = absl::StrCat(MAPKV_SOURCE_DIR, "/data/golden/v1/sample.mapkv");
  if (!test::FileExists(golden)) GTEST_SKIP() << "no " << golden;
  const std::string db = Path("v1.mapkv");
  ASSERT_TRUE(WriteFile(db, ReadFile(golden)));
  const Content model = ReadContent(db);
  ASSERT_FALSE(model.empty());
  const std::string copy = Path("v1-copy.mapkv");
  ToolResult r = Run({"backup", db, copy});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "was read under its shared lock")) << r.out;
  EXPECT_EQ(ReadContent(copy), model);
  EXPECT_TRUE(Contains(Run({"stat", "--json", copy}).out, "\"format_version\":5,"));
  EXPECT_TRUE(Contains(Run({"stat", "--json", db}).out, "\"format_version\":1,"));
  EXPECT_TRUE(Contains(Run({"stat", db}).out, "none: in format version 1"));
}

// A database that needs recovery (here: an unclean machine stop) is recovered by the backup's
// open, as by any writer's, and then copied.
TEST_F(ToolTest, BackupRecoversASourceThatNeedsIt) {
  const std::string db = Path("unclean.mapkv");
  Write(db, {{"k", "v"}, {"k2", "v2"}});
  // As after a machine stop: another boot's id, and no clean close (src/format.h SharedState).
  std::string bytes = ReadFile(db);
  const uint64_t other_boot = 0x1234567;
  std::memcpy(bytes.data() + 1104, &other_boot, sizeof(other_boot));
  std::memset(bytes.data() + 1112, 0, 4);
  ASSERT_TRUE(WriteFile(db, bytes));
  ASSERT_EQ(Run({"stat", db}).status, 3) << "the file does not need recovery";
  const std::string copy = Path("copy.mapkv");
  ToolResult r = Run({"backup", db, copy});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ReadContent(copy), (Content{{"k", "v"}, {"k2", "v2"}}));
  EXPECT_EQ(Run({"stat", db}).status, 0) << "recovered";
}

// The state that commit `n` of StampingWriterChild leaves (n = 0: the one MakeStampedDatabase
// writes): kStampedKeys keys all saying n, "seq" = n, "only/<n>" alone of its kind, and the
// "grow/<i>/<m>" keys of every commit i up to n; and kBaseKeys keys that no commit changes, there
// so that a copy takes long enough for commits to fall inside it.
constexpr int kStampedKeys = 16;
constexpr int kGrowKeys = 2;
constexpr int kBaseKeys = 20000;

Content StampedState(int n) {
  Content content;
  for (int j = 0; j < kStampedKeys; ++j) content[absl::StrCat("k/", j)] = absl::StrCat(n);
  content["seq"] = absl::StrCat(n);
  content[absl::StrCat("only/", n)] = absl::StrCat(n);
  for (int i = 1; i <= n; ++i) {
    for (int m = 0; m < kGrowKeys; ++m) content[absl::StrCat("grow/", i, "/", m)] = "g";
  }
  for (int b = 0; b < kBaseKeys; ++b) {
    content[absl::StrCat("base/", b)] = absl::StrCat("base value ", b, std::string(250, 'b'));
  }
  return content;
}

absl::Status WriteStampedCommit(int n, WriteTxn& txn) {
  for (int j = 0; j < kStampedKeys; ++j) {
    if (absl::Status s = txn.Put(absl::StrCat("k/", j), absl::StrCat(n)); !s.ok()) return s;
  }
  if (absl::Status s = txn.Put("seq", absl::StrCat(n)); !s.ok()) return s;
  if (absl::Status s = txn.Delete(absl::StrCat("only/", n - 1)); !s.ok()) return s;
  if (absl::Status s = txn.Put(absl::StrCat("only/", n), absl::StrCat(n)); !s.ok()) return s;
  for (int m = 0; m < kGrowKeys; ++m) {
    if (absl::Status s = txn.Put(absl::StrCat("grow/", n, "/", m), "g"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void MakeStampedDatabase(const std::string& path) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path));
  ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
  for (const auto& [k, v] : StampedState(0)) ASSERT_OK(txn.Put(k, v));
  ASSERT_OK(txn.Commit());
}

// Which commit `content` is the state of: its stamp, or -1 (with a test failure) when it is the
// state of none.
int StampOf(const Content& content, std::string_view what) {
  auto seq = content.find("seq");
  int n = -1;
  if (seq == content.end() || !absl::SimpleAtoi(seq->second, &n) || n < 0) {
    ADD_FAILURE() << what << ": no stamp";
    return -1;
  }
  const Content expected = StampedState(n);
  if (content == expected) return n;
  int wrong = 0;
  for (const auto& [k, v] : expected) {
    auto it = content.find(k);
    if (it == content.end() || it->second != v) {
      if (++wrong <= 5) ADD_FAILURE() << what << " (stamp " << n << "): " << k << " wrong";
    }
  }
  ADD_FAILURE() << what << ": " << content.size() << " keys, the state of commit " << n << " has "
                << expected.size() << "; " << wrong << " of its keys wrong or missing";
  return -1;
}

// Commits to the database at args[0] (made by MakeStampedDatabase) in bursts, commit n = 1, 2,
// ... as WriteStampedCommit says, with a lock timeout of 100 ms. A byte 'g' on `control`
// (args[1]) starts a burst, which goes on until another byte arrives or args[3] commits; each
// burst's end is answered with a byte on `reply` (args[2]). At the end of `control` it writes how
// many commits it made (a u64) on `reply` and exits. Every commit must succeed: a reader that
// held the lock meanwhile would make one time out.
MAPKV_CHILD(StampingWriterChild) {
  test::ChildPipe control = args.PipeEnd(1);
  test::ChildPipe reply = args.PipeEnd(2);
  const int burst_commits = args.Int<int>(3);
  Options options;
  options.create_if_missing = false;
  options.lock_timeout = std::chrono::milliseconds(100);
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(args.at(0), options);
  CHILD_CHECK_OK(db);
  int n = 0;
  for (;;) {
    char c = 0;
    absl::StatusOr<size_t> got = tools::ReadSome(control.fd(), &c, 1);
    CHILD_CHECK_OK(got.status());
    if (*got == 0) break;    // the end
    if (c != 'g') continue;  // the stop of a burst that had ended at its limit
    for (int i = 0; i < burst_commits && !control.Readable(); ++i) {
      ++n;
      absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
      CHILD_CHECK_OK(txn, "commit ", n);
      CHILD_CHECK_OK(WriteStampedCommit(n, *txn), "commit ", n);
      CHILD_CHECK_OK(txn->Commit(), "commit ", n);
    }
    CHILD_CHECK(reply.Write("b"));
  }
  CHILD_CHECK(reply.WriteU64(static_cast<uint64_t>(n)));
  return 0;
}

// The parent's side of StampingWriterChild.
class StampingWriter {
 public:
  StampingWriter(const std::string& db, int burst_commits) {
    pid_ = test::StartChild("StampingWriterChild",
                            {db, control_.ReadEndArg(), reply_.WriteEndArg(), burst_commits});
    control_.CloseRead();
    reply_.CloseWrite();
  }
  void Start() { EXPECT_TRUE(control_.Write("g")); }
  // Stops the burst (if it still commits) and waits for its end.
  void Stop() {
    EXPECT_TRUE(control_.Write("s"));
    EXPECT_TRUE(reply_.WaitByte()) << "the writer died";
  }
  // Waits for the burst to end at its limit.
  void Wait() { EXPECT_TRUE(reply_.WaitByte()) << "the writer died"; }
  // Ends the writer: the number of its commits, -1 when one failed.
  int Finish() {
    control_.CloseWrite();
    const int status = test::WaitChild(pid_);
    EXPECT_EQ(status, 0) << "a commit of the writer failed (its stderr says which)";
    const std::vector<uint64_t> counts = test::Pipe::DecodeU64s(reply_.ReadAll());
    return status == 0 && counts.size() == 1 ? static_cast<int>(counts[0]) : -1;
  }

 private:
  test::Pipe control_, reply_;
  int pid_ = -1;
};

// Backups and compactions into other files, one after another, each while another process
// commits as fast as it can (up to 3000 commits): each copy opens, checks clean and holds the
// state of one commit, each later than or equal to the last; the writer's commits all succeed
// with a 100 ms lock timeout.
TEST_F(ToolTest, BackupAndCompactIntoAnotherFileBesideAWriter) {
  const std::string db = Path("busy.mapkv");
  MakeStampedDatabase(db);
  StampingWriter writer(db, 3000);
  int last = 0;
  std::vector<int> stamps;
  for (int i = 0; i < 6; ++i) {
    const bool backup = i % 2 == 0;
    const std::string copy = Path(absl::StrCat("copy", i, ".mapkv"));
    writer.Start();
    ToolResult r = backup ? Run({"backup", db, copy}) : Run({"compact", "--output", copy, db});
    writer.Stop();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(Run({"check", copy}).status, 0) << copy;
    const int stamp = StampOf(ReadContent(copy), copy);
    EXPECT_GE(stamp, last) << copy;
    last = stamp;
    stamps.push_back(stamp);
  }
  const int commits = writer.Finish();
  ASSERT_GT(commits, 0);
  EXPECT_GE(commits, last);
  std::printf("6 copies beside %d commits hold commits %s\n", commits,
              absl::StrJoin(stamps, ", ").c_str());
  EXPECT_EQ(StampOf(ReadContent(db), db), commits);
  EXPECT_TRUE(TempFiles().empty());
}

// dump's output goes into a pipe that nobody reads until a writer has made all of its commits:
// dump has begun (its first bytes arrived) and cannot end (its output is many times what the
// pipe and its own buffer hold), so its snapshot is open throughout. The writer's commits all
// succeed with a 100 ms lock timeout, and the dump is the database as it was before them.
TEST_F(ToolTest, DumpIntoASlowConsumerBesideAWriter) {
  if (!test::FileExists("/dev/fd/0")) GTEST_SKIP() << "no /dev/fd to give the tool a pipe";
  const std::string db = Path("dumped.mapkv");
  MakeStampedDatabase(db);
  test::Pipe out;
  std::string dumped;
  const int dump = StartStalledDump(db, out, &dumped);
  ASSERT_GT(dump, 0);

  StampingWriter writer(db, 200);
  writer.Start();
  writer.Wait();
  EXPECT_EQ(writer.Finish(), 200);

  const Content content = FinishStalledDump(dump, out, std::move(dumped), 2);
  EXPECT_EQ(StampOf(content, "the dump"), 0) << "the dump is not the state before the commits";
  EXPECT_EQ(StampOf(ReadContent(db), db), 200);
}

// Puts args[1] values ("changed <i>" over "base/<i>") into the cache at args[0] and deletes as
// many other base keys, with a lock timeout of 100 ms: every call must succeed.
MAPKV_CHILD(CacheChangingChild) {
  CacheOptions options;
  options.db.create_if_missing = false;
  options.db.lock_timeout = std::chrono::milliseconds(100);
  absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Open(args.at(0), options);
  CHILD_CHECK_OK(cache);
  const int n = args.Int<int>(1);
  for (int i = 0; i < n; ++i) {
    CHILD_CHECK_OK((*cache)->Put(absl::StrCat("base/", i), absl::StrCat("changed ", i)), i);
    CHILD_CHECK_OK((*cache)->Delete(absl::StrCat("base/", n + i)), i);
  }
  return 0;
}

// A cache's dump into a pipe that nobody reads until another process has changed 400 of its
// entries (as DumpIntoASlowConsumerBesideAWriter, with a cache whose log is a ring): every put
// and delete succeeds with a 100 ms lock timeout, and the dump is the cache as it was before them.
TEST_F(ToolTest, DumpOfACacheIntoASlowConsumerBesideAWriter) {
  if (!test::FileExists("/dev/fd/0")) GTEST_SKIP() << "no /dev/fd to give the tool a pipe";
  const std::string path = Path("cache.mapkv");
  Content before;
  {
    CacheOptions options;
    options.capacity = 32ull << 20;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(path, options));
    for (int b = 0; b < kBaseKeys; ++b) {
      const std::string key = absl::StrCat("base/", b);
      before[key] = absl::StrCat("base value ", b, std::string(250, 'b'));
      ASSERT_OK(cache->Put(key, before[key]));
    }
  }
  test::Pipe out;
  std::string dumped;
  const int dump = StartStalledDump(path, out, &dumped);
  ASSERT_GT(dump, 0);

  EXPECT_EQ(test::RunChild("CacheChangingChild", {path, 200}), 0)
      << "a put or delete waited for the dump";

  const Content content = FinishStalledDump(dump, out, std::move(dumped), 3);
  EXPECT_TRUE(content == before) << "the dump is not the cache before the changes: "
                                 << content.size() << " entries";
  const ToolResult now = Run({"get", path, "base/0"});
  EXPECT_EQ(now.out, "changed 0") << "the changes did not land";
  const ToolResult stat = Run({"stat", path});
  EXPECT_TRUE(Contains(stat.out, "not listed: a read of a cache")) << stat.out;
}

// check beside a writer that commits as fast as it can (up to 3000 commits per check): clean
// every time, and the writer's commits all succeed with a 100 ms lock timeout.
TEST_F(ToolTest, CheckBesideAWriter) {
  const std::string db = Path("checked.mapkv");
  MakeStampedDatabase(db);
  StampingWriter writer(db, 3000);
  for (int i = 0; i < 3; ++i) {
    writer.Start();
    ToolResult check = Run({"check", db});
    writer.Stop();
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    EXPECT_TRUE(Contains(check.out, ": ok: ")) << check.out;
  }
  EXPECT_GT(writer.Finish(), 0);
  EXPECT_EQ(Run({"check", db}).status, 0);
}

// stat lists the open snapshots: who holds them, how many, since when, and how far behind.
TEST_F(ToolTest, StatListsTheOpenSnapshots) {
  const std::string db = Path("snap.mapkv");
  ASSERT_EQ(Run({"put", db, "k", "v"}).status, 0);
  EXPECT_TRUE(Contains(Run({"stat", db}).out, "snapshots        none open\n"));
  ToolResult none = Run({"stat", "--json", db});
  EXPECT_TRUE(Contains(none.out,
                       "\"snapshots\":0,\"snapshot_pinned_bytes\":0,"
                       "\"snapshot_holders\":[],"))
      << none.out;

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> reader, DB::Open(db));
  std::optional<ReadTxn> first, second;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn read, reader->BeginRead());
    first.emplace(std::move(read));
  }
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn read, reader->BeginRead());
    second.emplace(std::move(read));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> writer, DB::Open(db));
  ASSERT_OK(writer->Put("k", std::string(1000, 'w')));
  const std::string pid = absl::StrCat(internal::CurrentPid());
  ToolResult text = Run({"stat", db});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, "snapshots        2 open (")) << text.out;
  EXPECT_TRUE(Contains(text.out, absl::StrCat("pid ", pid, ": 2 snapshots, the oldest ")))
      << text.out;
  EXPECT_TRUE(Contains(text.out, " KiB committed since\n")) << "a 1000-byte value since:\n"
                                                            << text.out;
  ToolResult json = Run({"stat", "--json", db});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_TRUE(Contains(json.out, "\"snapshots\":2,\"snapshot_pinned_bytes\":")) << json.out;
  EXPECT_TRUE(Contains(json.out, absl::StrCat("\"snapshot_holders\":[{\"pid\":", pid,
                                              ",\"snapshots\":2,\"since_unix_ms\":")))
      << json.out;
  EXPECT_TRUE(Contains(json.out, ",\"age_s\":") && Contains(json.out, ",\"tail\":")) << json.out;
  EXPECT_FALSE(Contains(json.out, "\"pinned_bytes\":0}")) << json.out;

  second.reset();
  EXPECT_TRUE(Contains(Run({"stat", "--json", db}).out, "\"snapshots\":1,"));
  first.reset();
  EXPECT_TRUE(Contains(Run({"stat", db}).out, "snapshots        none open\n"));
}

// ---------------------------------------------------------------------------------------------
// demo and bench run to the end.

// Checks the demo's report: a table with one row per worker (0..workers-1) and a total, entries
// evicted, and the verdict.
void ExpectDemoReport(const std::string& out, int workers) {
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  std::vector<std::string> rows;
  bool in_table = false;
  bool total = false;
  for (const std::string& line : lines) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields[0] == "worker" && fields.size() > 2 && fields[2] == "requests") {
      in_table = true;
    } else if (in_table && fields[0] == "total") {
      total = true;
      in_table = false;
    } else if (in_table) {
      rows.push_back(fields[0]);
      EXPECT_EQ(fields.back(), "ok") << line;
    }
  }
  std::vector<std::string> expected;
  for (int i = 0; i < workers; ++i) expected.push_back(absl::StrCat(i));
  EXPECT_EQ(rows, expected) << out;
  EXPECT_TRUE(total) << out;
  // The cache's statistics: a slow build (ASan, wine) may compute too few pages to fill the
  // ring in a short run, so evictions are required once the pages computed are twice its size.
  uint64_t evictions = 0, computes = 0;
  bool evictions_line = false;
  for (const std::string& line : lines) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 2) continue;
    const std::string n = absl::StrReplaceAll(fields[1], {{",", ""}});
    if (fields[0] == "evictions") {
      evictions_line = true;
      EXPECT_TRUE(absl::SimpleAtoi(n, &evictions)) << line;
    } else if (fields[0] == "computes") {
      EXPECT_TRUE(absl::SimpleAtoi(n, &computes)) << line;
    }
  }
  EXPECT_TRUE(evictions_line) << out;
  if (computes * 4096 > 2 * (2u << 20)) {
    EXPECT_GT(evictions, 0u) << computes << " pages of 4 KiB computed, nothing evicted:\n" << out;
  }
  EXPECT_TRUE(Contains(out, "of a capacity of 2.0 MiB: within it")) << out;
  EXPECT_TRUE(Contains(out, "all checks passed")) << out;
}

// A capacity of 2 MiB (about 400 pages of 4 KiB) makes even a short run evict, under wine too,
// where the workers start late and serve a few thousand requests. A counter or a lease is an
// entry like a page: 30% of requests on 8 counters rewrite each far more often than once per lap
// of that small ring, and a lap takes far longer than a 200 us computation, so neither is
// evicted while in use (the demo would say so and fail).
const std::vector<std::string> kSmallDemo = {"--seconds",    "0.4",  "--capacity",   "2M",
                                             "--value-size", "4096", "--increments", "30"};

TEST_F(ToolTest, DemoAndBenchRun) {
  // Forked workers; where there is no fork() (Windows), the tool starts itself once per worker.
  std::vector<std::string> args = {"demo", "--workers", "3"};
  args.insert(args.end(), kSmallDemo.begin(), kSmallDemo.end());
  ToolResult demo = Run(args);
  EXPECT_EQ(demo.status, 0) << demo.out << demo.err;
  ExpectDemoReport(demo.out, 3);
  ToolResult bench = Run({"bench", "--keys", "2000", "--dir", dir_.path()});
  EXPECT_EQ(bench.status, 0) << bench.out << bench.err;
  EXPECT_TRUE(Contains(bench.out, "get, hit") && Contains(bench.out, "compact:")) << bench.out;
  EXPECT_FALSE(test::FileExists(Path("bench.mapkv"))) << "bench removes its scratch files";
}

TEST_F(ToolTest, DemoSpawnsItsWorkers) {
  // The Windows way, on every platform: each worker is `mapkv demo --worker ...`. With --path the
  // cache is kept, and a second run starts from its counters and statistics.
  std::vector<std::string> args = {"demo", "--spawn", "--workers", "2", "--path", Path("c.mapkv")};
  args.insert(args.end(), kSmallDemo.begin(), kSmallDemo.end());
  for (int run = 0; run < 2; ++run) {
    ToolResult demo = Run(args);
    EXPECT_EQ(demo.status, 0) << demo.out << demo.err;
    EXPECT_TRUE(Contains(demo.out, "this program, started again")) << demo.out;
    EXPECT_TRUE(Contains(demo.out, run == 0 ? "(new, kept)" : "(existing, kept)")) << demo.out;
    ExpectDemoReport(demo.out, 2);
  }
  EXPECT_TRUE(test::FileExists(Path("c.mapkv")));
}

TEST_F(ToolTest, DemoRejectsBadOptions) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--capacity", "8X"}, "--capacity: \"8X\" is not a size"},
      {{"--capacity", "512K"}, "at least 1 MiB"},
      {{"--capacity", "1M", "--value-size", "200K"}, "--value-size 200K"},
      {{"--workers", "0"}, "--workers"},
      {{"--seconds", "0"}, "--seconds"},
      {{"--worker", "0"}, "--worker is for the processes"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> argv = {"demo"};
    argv.insert(argv.end(), args.begin(), args.end());
    ToolResult demo = Run(argv);
    EXPECT_EQ(demo.status, 2) << absl::StrJoin(args, " ") << "\n" << demo.out << demo.err;
    EXPECT_TRUE(Contains(demo.err, message)) << demo.err;
  }
  ToolResult missing = Run({"demo", "--data", Path("no-such.tsv")});
  EXPECT_EQ(missing.status, 4) << missing.err;
  EXPECT_TRUE(Contains(missing.err, "no-such.tsv")) << missing.err;
}

// ---------------------------------------------------------------------------------------------
// Paper cuts: version, help, messages, plurals, who holds a file.

TEST_F(ToolTest, VersionAndBareHelp) {
  for (const char* flag : {"--version", "-V"}) {
    ToolResult version = Run({flag});
    EXPECT_EQ(version.status, 0) << version.err;
    EXPECT_TRUE(absl::StartsWith(version.out, "mapkv ") && absl::EndsWith(version.out, "\n"))
        << version.out;
    EXPECT_TRUE(version.err.empty()) << version.err;
  }
  ToolResult help = Run({"help"});
  EXPECT_EQ(help.status, 0) << help.err;
  EXPECT_EQ(help.out, Run({"--help"}).out) << "`mapkv help` is the list of commands";
  EXPECT_TRUE(Contains(help.out, "  salvage ")) << help.out;
}

TEST_F(ToolTest, MessagesNameThePathOnceAndCountInWords) {
  const std::string text = Path("notes.txt");
  ASSERT_TRUE(WriteFile(text, std::string(8192, 'x')));
  ToolResult check = Run({"check", text});
  EXPECT_EQ(check.status, 3);
  for (const std::string* stream : {&check.out, &check.err}) {
    const std::vector<std::string> pieces = absl::StrSplit(*stream, text);
    EXPECT_EQ(pieces.size(), 2u) << "the path once: " << *stream;
  }

  const std::string missing = Path("nothere.mapkv");
  ToolResult compact = Run({"compact", missing});
  EXPECT_EQ(compact.status, 4);
  EXPECT_TRUE(
      absl::StartsWith(compact.err, absl::StrCat("mapkv compact: ", missing, ": no such file")))
      << compact.err;
  EXPECT_FALSE(Contains(compact.err, "realpath")) << compact.err;

  const std::string db = Path("one.mapkv");
  ToolResult load = Run({"load", db}, "k\tv\n");
  EXPECT_TRUE(Contains(load.out, "loaded 1 record (")) << load.out;
  ToolResult clean = Run({"check", db});
  EXPECT_TRUE(Contains(clean.out, ": ok: 1 key, ")) << clean.out;
  EXPECT_TRUE(Contains(Run({"stat", db}).out, "0 other handles")) << "zero takes the plural";
}

TEST_F(ToolTest, StatListsTheProcessesThatHoldTheFile) {
  const std::string db = Path("held.mapkv");
  ASSERT_EQ(Run({"put", db, "k", "v"}).status, 0);
  ToolResult alone = Run({"stat", "--json", db});
  EXPECT_TRUE(Contains(alone.out, "\"handles\":[],")) << alone.out;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> holder, DB::Open(db));
  const std::string pid = absl::StrCat(internal::CurrentPid());
  ToolResult text = Run({"stat", db});
  EXPECT_TRUE(Contains(text.out, "1 other handle (")) << text.out;
  EXPECT_TRUE(Contains(text.out, absl::StrCat("pid ", pid, ", opened 20"))) << text.out;
  ToolResult json = Run({"stat", "--json", db});
  EXPECT_TRUE(
      Contains(json.out, absl::StrCat("\"handles\":[{\"pid\":", pid, ",\"opened_unix_ms\":")))
      << json.out;
}

// A file that needs recovery is left as it is by every command that only looks, and each says so.
TEST_F(ToolTest, ReadCommandsLeaveAFileThatNeedsRecovery) {
  const std::string db = Path("unclean.mapkv");
  Write(db, {{"k", "v"}});
  // As after a machine stop: another boot's id, and no clean close (src/format.h SharedState).
  std::string bytes = ReadFile(db);
  const uint64_t other_boot = 0x1234567;
  std::memcpy(bytes.data() + 1104, &other_boot, sizeof(other_boot));
  std::memset(bytes.data() + 1112, 0, 4);
  ASSERT_TRUE(WriteFile(db, bytes));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"get", db, "k"}, {"dump", db}, {"stat", db}, {"check", db}}) {
    ToolResult r = Run(args);
    EXPECT_EQ(r.status, 3) << args[0] << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "needs recovery") && Contains(r.err, "is unchanged"))
        << args[0] << ": " << r.err;
    EXPECT_TRUE(ReadFile(db) == bytes) << args[0] << " changed the file";
  }
  // A command that writes recovers it.
  EXPECT_EQ(Run({"put", db, "k2", "v2"}).status, 0);
  EXPECT_EQ(ReadContent(db), (Content{{"k", "v"}, {"k2", "v2"}}));
}

// ---------------------------------------------------------------------------------------------
// load never drops a line silently, and cleans up after itself.

TEST_F(ToolTest, LoadCommentsOnlyWhenAskedFor) {
  const std::string db = Path("tags.mapkv");
  ToolResult tag = Run({"load", db}, "#hashtag\tpopular\nk\tv\n");
  ASSERT_EQ(tag.status, 0) << tag.err;
  EXPECT_TRUE(Contains(tag.out, "loaded 2 records (")) << tag.out;
  EXPECT_EQ(ReadContent(db), (Content{{"#hashtag", "popular"}, {"k", "v"}}));

  ToolResult comment = Run({"load", db}, "# a comment\nk2\tv2\n");
  EXPECT_EQ(comment.status, 4);
  EXPECT_TRUE(Contains(comment.err, "stdin:1:") && Contains(comment.err, "--comments"))
      << comment.err;
  ToolResult skipped = Run({"load", "--comments", db}, "# a comment\n#tag\tx\nk2\tv2\n");
  ASSERT_EQ(skipped.status, 0) << skipped.err;
  EXPECT_TRUE(Contains(skipped.out, "loaded 1 record (") &&
              Contains(skipped.out, "skipped 2 comment lines"))
      << skipped.out;
  EXPECT_EQ(ReadContent(db).size(), 3u);
}

TEST_F(ToolTest, LoadColumns) {
  const std::string db = Path("cols.mapkv");
  ToolResult three = Run({"load", db}, "k\tv\tthird\n");
  EXPECT_EQ(three.status, 4);
  EXPECT_TRUE(Contains(three.err, "3 tab-separated fields") && Contains(three.err, "--columns") &&
              Contains(three.err, "\\t"))
      << three.err;
  ToolResult chosen = Run({"load", "--columns", "1,3", db}, "k\tignored\tv\nk2\tx\tv2\textra\n");
  ASSERT_EQ(chosen.status, 0) << chosen.err;
  EXPECT_EQ(ReadContent(db), (Content{{"k", "v"}, {"k2", "v2"}}));
  ToolResult short_line = Run({"load", "--columns", "1,3", db}, "k\tv\n");
  EXPECT_EQ(short_line.status, 4);
  EXPECT_TRUE(Contains(short_line.err, "stdin:1: 2 tab-separated fields")) << short_line.err;
  EXPECT_EQ(Run({"load", "--columns", "0,1", db}, "k\tv\n").status, 2);
  EXPECT_EQ(Run({"load", "--columns", "1,2,3", db}, "k\tv\tnever\n").status, 2)
      << "an expiry column is for a cache";
  EXPECT_EQ(ReadContent(db).size(), 2u);
}

TEST_F(ToolTest, LoadJsonExtraFields) {
  const std::string db = Path("extra.mapkv");
  const std::string input =
      "{\"key\":\"k\",\"value\":\"v\",\"id\":7,\"tags\":[\"a\"],\"meta\":{\"x\":null}}\n";
  ToolResult loose = Run({"load", "--format", "jsonl", db}, input);
  ASSERT_EQ(loose.status, 0) << loose.err;
  EXPECT_EQ(ReadContent(db), (Content{{"k", "v"}}));
  ToolResult strict = Run({"load", "--format", "jsonl", "--strict", db}, input);
  EXPECT_EQ(strict.status, 4);
  EXPECT_TRUE(Contains(strict.err, "stdin:1: unknown field \"id\"")) << strict.err;
}

TEST_F(ToolTest, FailedLoadRemovesTheFileItCreated) {
  const std::string fresh = Path("fresh.mapkv");
  ToolResult r = Run({"load", fresh}, "good\t1\nbroken line\n");
  EXPECT_EQ(r.status, 4);
  EXPECT_TRUE(Contains(r.err, absl::StrCat("removed ", fresh, ", which this load created")))
      << r.err;
  EXPECT_FALSE(test::FileExists(fresh));
  ToolResult batched = Run({"load", "--batch", "1", fresh}, "a\t1\nbroken line\n");
  EXPECT_EQ(batched.status, 4);
  EXPECT_FALSE(test::FileExists(fresh)) << "even with committed batches: the load made it";
  EXPECT_EQ(Run({"load", fresh}, "", 0).status, 0) << "an empty input loads nothing, and is fine";
  EXPECT_TRUE(test::FileExists(fresh));

  const std::string existing = Path("existing.mapkv");
  ASSERT_EQ(Run({"put", existing, "before", "1"}).status, 0);
  EXPECT_EQ(Run({"load", existing}, "broken line\n").status, 4);
  EXPECT_EQ(ReadContent(existing), (Content{{"before", "1"}})) << "a file it did not create stays";
}

// ---------------------------------------------------------------------------------------------
// get, put, del, dump and load on a cache's file.

TEST_F(ToolTest, ValuesOfACache) {
  const std::string cache_path = Path("c2.mapkv");
  {
    CacheOptions options;
    options.capacity = 0;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(cache_path, options));
    ASSERT_OK(cache->Put("cnt", "41"));
  }
  ToolResult get = Run({"get", cache_path, "cnt"});
  EXPECT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(get.out, "41");
  ASSERT_EQ(Run({"put", "--ttl", "1h", cache_path, "session", "token"}).status, 0);
  ASSERT_EQ(Run({"put", cache_path, "cnt", "42"}).status, 0);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(cache_path));
    EXPECT_OK_AND_EQ(cache->Get("cnt"), "42");
    EXPECT_OK_AND_EQ(cache->Get("session"), "token");
    ASSERT_OK_AND_ASSIGN(const int64_t counted, cache->Increment("cnt", 1));
    EXPECT_EQ(counted, 43);
  }
  ToolResult dump = Run({"dump", cache_path});
  EXPECT_EQ(dump.status, 0) << dump.err;
  EXPECT_TRUE(Contains(dump.out, "cnt\t43\tnever\n")) << dump.out;
  EXPECT_TRUE(Contains(dump.out, "session\ttoken\t20")) << "the expiry, an hour on: " << dump.out;

  // A cache's dump loads into another cache with its expiries; an expired line is not loaded.
  const std::string copy = Path("copy.mapkv");
  {
    CacheOptions options;
    options.capacity = 0;
    ASSERT_OK(Cache::Open(copy, options));
  }
  ToolResult load =
      Run({"load", copy}, absl::StrCat(dump.out, "old\tgone\t2001-01-01T00:00:00Z\n"));
  ASSERT_EQ(load.status, 0) << load.err;
  EXPECT_TRUE(Contains(load.out, "loaded 2 records (") &&
              Contains(load.out, "skipped 1 record already expired"))
      << load.out;
  EXPECT_EQ(Run({"dump", copy}).out.size(), dump.out.size());
  ToolResult ttl = Run({"load", "--ttl", "10m", copy}, "fresh\tvalue\n");
  ASSERT_EQ(ttl.status, 0) << ttl.err;
  EXPECT_FALSE(Contains(Run({"dump", copy}).out, "fresh\tvalue\tnever")) << "--ttl applies";

  // A cache's file salvages into a cache's file, expiries and all.
  const std::string salvaged = Path("c2-salvaged.mapkv");
  ToolResult salvage = Run({"salvage", cache_path, salvaged});
  EXPECT_EQ(salvage.status, 0) << salvage.out << salvage.err;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(salvaged));
    EXPECT_OK_AND_EQ(cache->Get("cnt"), "43");
    EXPECT_OK_AND_EQ(cache->Get("session"), "token");
  }
  std::vector<std::string> before = absl::StrSplit(dump.out, '\n');
  std::vector<std::string> after = absl::StrSplit(Run({"dump", salvaged}).out, '\n');
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, before) << "the same entries (dump's order is the index's)";

  EXPECT_EQ(Run({"del", cache_path, "session"}).status, 0);
  EXPECT_EQ(Run({"get", cache_path, "session"}).status, 1);
  EXPECT_EQ(Run({"del", cache_path, "session"}).status, 1);

  // --ttl belongs to caches: on a database it is a usage error that changes nothing.
  const std::string db = Path("plain.mapkv");
  ASSERT_EQ(Run({"put", db, "k", "v"}).status, 0);
  ToolResult refused = Run({"put", "--ttl", "1h", db, "k", "w"});
  EXPECT_EQ(refused.status, 2);
  EXPECT_TRUE(Contains(refused.err, "is a database")) << refused.err;
  EXPECT_EQ(Run({"put", "--ttl", "soon", cache_path, "k", "w"}).status, 2);
  EXPECT_EQ(Run({"put", "--ttl", "1h", Path("absent.mapkv"), "k", "w"}).status, 4);
  EXPECT_FALSE(test::FileExists(Path("absent.mapkv")));
  EXPECT_EQ(Run({"load", "--ttl", "1h", db}, "k\tw\n").status, 2);
  EXPECT_EQ(ReadContent(db), (Content{{"k", "v"}}));
  // A cache's dump into a database: the expiry column is refused, --columns 1,2 takes the rest.
  EXPECT_EQ(Run({"load", db}, dump.out).status, 4);
  EXPECT_EQ(Run({"load", "--columns", "1,2", db}, dump.out).status, 0);
  EXPECT_EQ(ReadContent(db).at("cnt"), "43");
}

// ---------------------------------------------------------------------------------------------
// salvage and dump --skip-damaged.

// Flips one byte in each of `targets` (found by their text) and returns the file as it was.
std::string FlipBytes(const std::string& path, const std::vector<std::string>& targets) {
  std::string bytes = ReadFile(path);
  const std::string before = bytes;
  for (const std::string& target : targets) {
    const size_t at = bytes.find(target);
    EXPECT_NE(at, std::string::npos) << target;
    if (at != std::string::npos) bytes[at + 2] ^= 0x55;
  }
  EXPECT_TRUE(WriteFile(path, bytes));
  return before;
}

TEST_F(ToolTest, SalvageRecoversEveryIntactRecord) {
  const std::string db = Path("damaged.mapkv");
  std::string input;
  for (int i = 0; i < 300; ++i) {
    absl::StrAppend(&input, "key", 1000 + i, "\tvalue of ", i, " ", std::string(20, 'x'), "\n");
  }
  ASSERT_EQ(Run({"load", "--batch", "50", db}, input).status, 0);
  // An older version of key1100 stays intact when its latest is damaged.
  ASSERT_EQ(Run({"put", db, "key1100", "the latest"}).status, 0);
  // key1150 and key1151 are neighbours: one damaged region.
  FlipBytes(db, {"key1020", "key1150", "key1151", "key1280", "the latest"});

  EXPECT_EQ(Run({"check", db}).status, 3);
  ToolResult dump = Run({"dump", db});
  EXPECT_EQ(dump.status, 3);
  const long dumped = std::count(dump.out.begin(), dump.out.end(), '\n');
  EXPECT_TRUE(Contains(dump.err, "--skip-damaged")) << dump.err;

  const std::string out = Path("salvaged.mapkv");
  const std::string damaged = ReadFile(db);
  ToolResult salvage = Run({"salvage", db, out});
  EXPECT_EQ(salvage.status, 3) << salvage.out << salvage.err;
  // 300 keys, 4 of them damaged; key1100's latest is damaged and its older version recovered.
  EXPECT_TRUE(Contains(salvage.out, ": 296 keys (")) << salvage.out;
  EXPECT_TRUE(Contains(salvage.out, "damaged: 4 regions")) << salvage.out;
  EXPECT_TRUE(Contains(salvage.out, "lost: 5 keys whose latest version is damaged")) << salvage.out;
  EXPECT_TRUE(ReadFile(db) == damaged) << "salvage never changes DB";
  EXPECT_EQ(Run({"check", out}).status, 0);
  const Content content = ReadContent(out);
  EXPECT_EQ(content.size(), 296u);
  EXPECT_GT(static_cast<long>(content.size()), dumped) << "more than dump lists";
  EXPECT_TRUE(content.count("key1000") && content.count("key1299"));
  EXPECT_EQ(content.count("key1150"), 0u);
  EXPECT_EQ(content.at("key1100").substr(0, 8), "value of") << "the older intact version";

  ToolResult skip = Run({"dump", "--skip-damaged", db});
  EXPECT_EQ(skip.status, 3);
  EXPECT_EQ(std::count(skip.out.begin(), skip.out.end(), '\n'), 296);
  EXPECT_TRUE(Contains(skip.err, "4 damaged regions skipped")) << skip.err;

  ToolResult exists = Run({"salvage", db, out});
  EXPECT_EQ(exists.status, 4);
  EXPECT_TRUE(Contains(exists.err, out) && Contains(exists.err, "exists")) << exists.err;
  EXPECT_EQ(Run({"salvage", Path("absent.mapkv"), Path("o2.mapkv")}).status, 4);
  EXPECT_FALSE(test::FileExists(Path("o2.mapkv")));
  const std::string text = Path("notes.txt");
  ASSERT_TRUE(WriteFile(text, std::string(70000, 'x')));
  ToolResult foreign = Run({"salvage", text, Path("o3.mapkv")});
  EXPECT_EQ(foreign.status, 4);
  EXPECT_TRUE(Contains(foreign.err, "not a mapkv file")) << foreign.err;

  // With the committed end of the log unreadable, the scan goes to the end of the file and keeps
  // the batches that end intact: here all of them.
  const std::string no_tail = Path("no-tail.mapkv");
  ASSERT_EQ(Run({"load", "--batch", "50", no_tail}, input).status, 0);
  {
    std::string bytes = ReadFile(no_tail);
    const uint64_t wild = 3;  // SharedState::committed_tail, misaligned
    std::memcpy(bytes.data() + 1024, &wild, sizeof(wild));
    ASSERT_TRUE(WriteFile(no_tail, bytes));
  }
  const std::string no_tail_out = Path("no-tail-out.mapkv");
  ToolResult scanned = Run({"salvage", no_tail, no_tail_out});
  EXPECT_EQ(scanned.status, 3) << scanned.out << scanned.err;
  EXPECT_TRUE(Contains(scanned.out, ": 300 keys (") &&
              Contains(scanned.out, "committed end of the log is unreadable") &&
              !Contains(scanned.out, "damaged:"))
      << scanned.out;
  EXPECT_EQ(ReadContent(no_tail_out).size(), 300u);

  // An undamaged file salvages whole, exit 0.
  const std::string clean = Path("clean.mapkv");
  const Content model = MakeChurnedDatabase(clean, 200, 4);
  const std::string clean_out = Path("clean-out.mapkv");
  ToolResult whole = Run({"salvage", clean, clean_out});
  EXPECT_EQ(whole.status, 0) << whole.out << whole.err;
  EXPECT_TRUE(Contains(whole.out, "lost: 0 keys")) << whole.out;
  EXPECT_EQ(ReadContent(clean_out), model);
}

}  // namespace
}  // namespace mapkv
