// `mapkv demo`: several processes sharing one database, with every value checked.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "command.h"
#include "common.h"
#include "mapkv/db.h"
#include "records.h"
#include "src/platform/subprocess.h"

// Set by tools/CMakeLists.txt: the source tree (for data/) and the installed data directory.
#ifndef MAPKV_SOURCE_DIR
#define MAPKV_SOURCE_DIR ""
#endif
#ifndef MAPKV_DATA_INSTALL_DIR
#define MAPKV_DATA_INSTALL_DIR ""
#endif

namespace mapkv::tools {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kSampleFile[] = "iso_codes.tsv";
constexpr int kSyntheticRecords = 1000;
// Every kNoteEvery-th increment of a worker's counter also rewrites its note, in the same
// transaction, so a snapshot can never show a note newer than the counter.
constexpr uint64_t kNoteEvery = 4;
// After its run, how long a worker keeps looking for commits of a worker it has not seen commit.
constexpr auto kGracePeriod = std::chrono::seconds(2);
// How long the parent waits for a worker to open the database, and past the end of the run for
// its report, before it kills it.
constexpr auto kWorkerSlack = std::chrono::seconds(30);

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Ellipsize(std::string_view s, size_t max = 60) {
  if (s.size() <= max) return std::string(s);
  return absl::StrCat(ToAbsl(s.substr(0, max)), "...");
}

std::string Millis(Clock::duration d) {
  return absl::StrFormat("%.2f ms", std::chrono::duration<double, std::milli>(d).count());
}

std::string CounterKey(int worker) { return absl::StrCat("worker/", worker, "/counter"); }
std::string NoteKey(int worker) { return absl::StrCat("worker/", worker, "/note"); }
std::string NoteValue(uint64_t counter, int worker, int pid) {
  return absl::StrCat(counter, " (written by worker ", worker, ", pid ", pid, ")");
}

bool ParseCounter(std::string_view text, uint64_t* counter) {
  return absl::SimpleAtoi(ToAbsl(text), counter);
}

// A note starts with the counter value it was written with.
bool ParseNote(std::string_view text, uint64_t* counter) {
  return ParseCounter(text.substr(0, text.find(' ')), counter);
}

// What a worker sends its parent through its pipe, once: plain bytes.
struct WorkerReport {
  int32_t worker = 0;
  int32_t pid = 0;
  uint64_t ops = 0;
  uint64_t gets = 0;             // Gets of sample keys, each value checked
  uint64_t snapshots = 0;        // ReadTxns over another worker's counter and note
  uint64_t commits = 0;          // write transactions that incremented its own counter
  uint64_t foreign_commits = 0;  // other workers' commits it saw (advances of their counters)
  uint64_t failures = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  char first_failure[400] = {};
};
static_assert(std::is_trivially_copyable_v<WorkerReport>);

void SetFailure(WorkerReport* report, std::string_view message) {
  if (report->failures++ == 0) {
    size_t n = std::min(message.size(), sizeof(report->first_failure) - 1);
    std::copy_n(message.data(), n, report->first_failure);
    report->first_failure[n] = '\0';
  }
}

// One worker process's part: a timed mix of checked operations on its own handle.
class Worker {
 public:
  Worker(DB* db, const std::vector<Record>& records, int index, int workers,
         const std::vector<uint64_t>& initial_counters, WorkerReport* report)
      : db_(db),
        records_(records),
        index_(index),
        workers_(workers),
        report_(report),
        own_(initial_counters[index]),
        last_counter_(initial_counters),
        initial_counter_(initial_counters),
        last_note_(workers, 0),
        rng_(0x6d61706b76ull ^ (static_cast<uint64_t>(index) * 0x9e3779b97f4a7c15ull) ^
             static_cast<uint64_t>(Clock::now().time_since_epoch().count())) {
    for (int i = 0; i < workers; ++i) {
      counter_keys_.push_back(CounterKey(i));
      note_keys_.push_back(NoteKey(i));
    }
  }

  void Run(std::chrono::duration<double> length) {
    double cpu_start = ProcessCpuSeconds();
    Clock::time_point start = Clock::now();
    Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(length);
    for (int other = 0; other < workers_; ++other) {
      if (other != index_) ReadOther(other);
    }
    while (Clock::now() < end) {
      uint64_t dice = rng_() % 100;
      if (dice < 75) {
        GetSample();
        ++report_->gets;
      } else if (dice < 90 && workers_ > 1) {
        int other = static_cast<int>(rng_() % (workers_ - 1));
        ReadOther(other >= index_ ? other + 1 : other);
        ++report_->snapshots;
      } else if (IncrementCounter()) {
        ++report_->commits;
      }
      ++report_->ops;
    }
    report_->wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    report_->cpu_seconds = ProcessCpuSeconds() - cpu_start;

    // Every other worker committed for as long as we ran; give a slow one a moment more.
    Clock::time_point give_up = Clock::now() + kGracePeriod;
    for (int other = 0; other < workers_; ++other) {
      if (other == index_) continue;
      while (last_counter_[other] == initial_counter_[other] && Clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ReadOther(other);
      }
      if (last_counter_[other] == initial_counter_[other]) {
        Fail(absl::StrCat("never saw a commit by worker ", other, ": its counter stayed at ",
                          last_counter_[other]));
      }
    }
  }

 private:
  void Fail(std::string_view message) { SetFailure(report_, message); }

  void GetSample() {
    const Record& record = records_[rng_() % records_.size()];
    absl::StatusOr<std::string> value = db_->Get(record.key);
    if (!value.ok()) {
      Fail(absl::StrCat("Get(\"", record.key, "\"): ", value.status().ToString()));
    } else if (*value != record.value) {
      Fail(absl::StrCat("Get(\"", record.key, "\") returned \"", Ellipsize(*value),
                        "\" but the data says \"", Ellipsize(record.value), "\""));
    }
  }

  // Reads another worker's counter and note in one snapshot and checks them against each other
  // and against what this worker saw before.
  void ReadOther(int other) {
    absl::StatusOr<ReadTxn> txn = db_->BeginRead();
    if (!txn.ok()) return Fail(absl::StrCat("BeginRead: ", txn.status().ToString()));
    uint64_t counter = 0;
    uint64_t note = 0;
    absl::StatusOr<std::string_view> value = txn->Get(counter_keys_[other]);
    if (value.ok()) {
      if (!ParseCounter(*value, &counter)) {
        return Fail(
            absl::StrCat(counter_keys_[other], " holds \"", Ellipsize(*value), "\", not a number"));
      }
    } else if (!absl::IsNotFound(value.status())) {
      return Fail(absl::StrCat("ReadTxn::Get(\"", counter_keys_[other],
                               "\"): ", value.status().ToString()));
    }
    value = txn->Get(note_keys_[other]);
    if (value.ok()) {
      if (!ParseNote(*value, &note)) {
        return Fail(
            absl::StrCat(note_keys_[other], " holds \"", Ellipsize(*value), "\", not a note"));
      }
    } else if (!absl::IsNotFound(value.status())) {
      return Fail(
          absl::StrCat("ReadTxn::Get(\"", note_keys_[other], "\"): ", value.status().ToString()));
    }
    if (counter < last_counter_[other]) {
      Fail(absl::StrCat("worker ", other, "'s counter went back from ", last_counter_[other],
                        " to ", counter));
    }
    if (note > counter) {
      Fail(absl::StrCat("one snapshot shows worker ", other, "'s note at ", note,
                        " but its counter at ", counter, ": not a consistent snapshot"));
    }
    if (note < last_note_[other]) {
      Fail(absl::StrCat("worker ", other, "'s note went back from ", last_note_[other], " to ",
                        note));
    }
    if (counter > last_counter_[other]) {
      report_->foreign_commits += counter - last_counter_[other];
      last_counter_[other] = counter;
    }
    last_note_[other] = std::max(last_note_[other], note);
  }

  // Read-modify-write of this worker's counter in one write transaction. Only this worker writes
  // it, so the value read must be the one it last committed.
  bool IncrementCounter() {
    absl::StatusOr<WriteTxn> txn = db_->BeginWrite();
    if (!txn.ok()) {
      Fail(absl::StrCat("BeginWrite: ", txn.status().ToString()));
      return false;
    }
    const std::string& key = counter_keys_[index_];
    uint64_t current = 0;
    absl::StatusOr<std::string_view> value = txn->Get(key);
    if (value.ok()) {
      if (!ParseCounter(*value, &current)) {
        Fail(absl::StrCat(key, " holds \"", Ellipsize(*value), "\", not a number"));
        return false;
      }
    } else if (!absl::IsNotFound(value.status())) {
      Fail(absl::StrCat("WriteTxn::Get(\"", key, "\"): ", value.status().ToString()));
      return false;
    }
    if (current != own_) {
      Fail(absl::StrCat("my write transaction reads my counter as ", current,
                        " but I last committed ", own_));
    }
    uint64_t next = current + 1;
    absl::Status status = txn->Put(key, absl::StrCat(next));
    if (status.ok() && next % kNoteEvery == 0) {
      status = txn->Put(note_keys_[index_], NoteValue(next, index_, report_->pid));
    }
    if (status.ok()) status = txn->Commit();
    if (!status.ok()) {
      Fail(absl::StrCat("incrementing ", key, ": ", status.ToString()));
      return false;
    }
    own_ = next;
    return true;
  }

  DB* db_;
  const std::vector<Record>& records_;
  const int index_;
  const int workers_;
  WorkerReport* report_;
  uint64_t own_;                           // this worker's counter as it last committed it
  std::vector<uint64_t> last_counter_;     // highest counter seen, per worker
  std::vector<uint64_t> initial_counter_;  // counters before the run
  std::vector<uint64_t> last_note_;        // highest note seen, per worker
  std::vector<std::string> counter_keys_;
  std::vector<std::string> note_keys_;
  std::mt19937_64 rng_;
};

struct DemoConfig {
  std::string db_path;  // empty: a file in a new temporary directory
  int64_t workers = 4;
  double seconds = 3;
  std::string data_path;  // empty: the sample from data/
};

// Where the sample data may be: the source tree this binary was built from, then the installed
// copy.
std::vector<std::string> SampleCandidates() {
  std::vector<std::string> out;
  if (std::string_view(MAPKV_SOURCE_DIR).size() > 0) {
    out.push_back(absl::StrCat(MAPKV_SOURCE_DIR, "/data/", kSampleFile));
  }
  if (std::string_view(MAPKV_DATA_INSTALL_DIR).size() > 0) {
    out.push_back(absl::StrCat(MAPKV_DATA_INSTALL_DIR, "/", kSampleFile));
  }
  return out;
}

std::vector<Record> SyntheticRecords() {
  std::vector<Record> records;
  for (int i = 0; i < kSyntheticRecords; ++i) {
    records.push_back({absl::StrFormat("synthetic/%04d", i),
                       absl::StrFormat("value %d of the demo's generated records", i)});
  }
  return records;
}

// One record per key, the last value winning, in first-seen order.
std::vector<Record> Deduplicate(std::vector<Record> records, size_t* duplicates) {
  absl::flat_hash_map<std::string, size_t> position;
  std::vector<Record> out;
  for (Record& record : records) {
    auto [it, inserted] = position.try_emplace(record.key, out.size());
    if (inserted) {
      out.push_back(std::move(record));
    } else {
      out[it->second].value = std::move(record.value);
    }
  }
  *duplicates = records.size() - out.size();
  return out;
}

class Demo {
 public:
  explicit Demo(DemoConfig config) : config_(std::move(config)) {}
  int Run();

 private:
  void Fail(std::string message) { failures_.push_back(std::move(message)); }
  bool LoadData();
  bool PrepareDatabase();
  bool LoadIntoDatabase();
  void RunWorkers();
  int ChildMain(int index, int to_parent, StartGate* gate);
  void CheckCounters();
  void PrintTable() const;
  void PrintStats();
  void Cleanup();

  DemoConfig config_;
  std::vector<Record> records_;
  std::string data_description_;
  std::string temp_dir_;  // empty when --db was given
  std::string db_path_;
  bool fresh_db_ = false;
  std::unique_ptr<DB> db_;
  std::vector<uint64_t> initial_counters_;
  std::vector<WorkerReport> reports_;
  std::vector<bool> reported_;
  std::vector<int> pids_;
  std::vector<std::string> failures_;
};

bool Demo::LoadData() {
  std::string path = config_.data_path;
  if (path.empty()) {
    for (const std::string& candidate : SampleCandidates()) {
      if (std::filesystem::exists(candidate)) {
        path = candidate;
        break;
      }
    }
    if (path.empty()) {
      std::string looked;
      for (const std::string& candidate : SampleCandidates())
        absl::StrAppend(&looked, " ", candidate);
      std::fprintf(stderr,
                   "mapkv demo: no sample data found (looked for%s); using %d generated records "
                   "instead. Pass --data FILE to load a key<TAB>value file.\n",
                   looked.empty() ? " nothing: built without MAPKV_SOURCE_DIR" : looked.c_str(),
                   kSyntheticRecords);
      records_ = SyntheticRecords();
      data_description_ = absl::StrCat(kSyntheticRecords, " generated records");
      return true;
    }
  }
  absl::StatusOr<std::vector<Record>> records = ReadRecordsFile(path, Format::kTsv);
  if (!records.ok()) {
    std::fprintf(stderr, "mapkv demo: %s\n", records.status().ToString().c_str());
    return false;
  }
  size_t duplicates = 0;
  records_ = Deduplicate(*std::move(records), &duplicates);
  if (records_.empty()) {
    std::fprintf(stderr, "mapkv demo: %s holds no records\n", path.c_str());
    return false;
  }
  uint64_t bytes = 0;
  for (const Record& record : records_) bytes += record.key.size() + record.value.size();
  data_description_ = absl::StrCat(path, ": ", Commas(records_.size()), " records, ", Bytes(bytes),
                                   " of keys and values");
  if (duplicates > 0) {
    absl::StrAppend(&data_description_, " (repeated keys: ", duplicates, ", last value kept)");
  }
  return true;
}

bool Demo::PrepareDatabase() {
  if (config_.db_path.empty()) {
    absl::StatusOr<std::string> dir = MakeTempDir("mapkv-demo-");
    if (!dir.ok()) {
      std::fprintf(stderr, "mapkv demo: cannot make a temporary directory: %s\n",
                   dir.status().ToString().c_str());
      return false;
    }
    temp_dir_ = *dir;
    db_path_ = temp_dir_ + "/demo.mapkv";
  } else {
    db_path_ = config_.db_path;
  }
  std::error_code error;
  fresh_db_ = !std::filesystem::exists(db_path_, error);
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_path_);
  if (!db.ok()) {
    std::fprintf(stderr, "mapkv demo: cannot open %s: %s\n", db_path_.c_str(),
                 db.status().ToString().c_str());
    return false;
  }
  db_ = *std::move(db);
  return true;
}

bool Demo::LoadIntoDatabase() {
  Clock::time_point start = Clock::now();
  absl::StatusOr<WriteTxn> txn = db_->BeginWrite();
  absl::Status status = txn.status();
  for (size_t i = 0; status.ok() && i < records_.size(); ++i) {
    status = txn->Put(records_[i].key, records_[i].value);
    if (!status.ok()) {
      status = absl::Status(status.code(), absl::StrCat("Put(\"", Ellipsize(records_[i].key),
                                                        "\"): ", status.message()));
    }
  }
  if (status.ok()) status = txn->Commit();
  Clock::duration load_time = Clock::now() - start;
  if (!status.ok()) {
    std::fprintf(stderr, "mapkv demo: loading the records failed: %s\n", status.ToString().c_str());
    return false;
  }
  double per_second = static_cast<double>(records_.size()) /
                      std::max(1e-9, std::chrono::duration<double>(load_time).count());
  std::printf("loaded     %s records in one write transaction: %s (%s records/s)\n",
              Commas(records_.size()).c_str(), Millis(load_time).c_str(),
              Commas(static_cast<uint64_t>(per_second)).c_str());

  // Read everything back in one snapshot before the workers start.
  start = Clock::now();
  absl::StatusOr<ReadTxn> read = db_->BeginRead();
  if (!read.ok()) {
    Fail(absl::StrCat("BeginRead: ", read.status().ToString()));
    return true;
  }
  size_t bad = 0;
  for (const Record& record : records_) {
    absl::StatusOr<std::string_view> value = read->Get(record.key);
    if (!value.ok() || *value != record.value) {
      if (bad++ == 0) {
        Fail(absl::StrCat(
            "after the load, Get(\"", record.key, "\") gave ",
            value.ok() ? absl::StrCat("\"", Ellipsize(*value), "\"") : value.status().ToString(),
            ", not \"", Ellipsize(record.value), "\""));
      }
    }
  }
  Clock::duration verify_time = Clock::now() - start;
  std::printf("read back  %s records in one read transaction: %s, %s\n",
              Commas(records_.size()).c_str(), Millis(verify_time).c_str(),
              bad == 0 ? "every value matches" : absl::StrCat(bad, " WRONG").c_str());
  return true;
}

int Demo::ChildMain(int index, int to_parent, StartGate* gate) {
  WorkerReport report;
  report.worker = index;
  report.pid = CurrentPid();
  // The parent's handle came with the fork and must not be used here: open our own.
  Options options;
  options.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_path_, options);
  char ready = db.ok() ? 1 : 0;
  if (!db.ok()) SetFailure(&report, absl::StrCat("DB::Open: ", db.status().ToString()));
  if (!WriteAll(to_parent, &ready, 1).ok()) return 1;
  if (ready) {
    if (absl::Status status = gate->Wait(); !status.ok()) {
      SetFailure(&report, status.ToString());
    } else {
      Worker worker(db->get(), records_, index, static_cast<int>(config_.workers),
                    initial_counters_, &report);
      worker.Run(std::chrono::duration<double>(config_.seconds));
    }
    db->reset();  // close before reporting, so the parent sees our handle gone
  }
  if (!WriteAll(to_parent, &report, sizeof(report)).ok()) return 1;
  return report.failures == 0 ? 0 : 1;
}

void Demo::RunWorkers() {
  const int workers = static_cast<int>(config_.workers);
  initial_counters_.assign(workers, 0);
  for (int i = 0; i < workers; ++i) {
    absl::StatusOr<std::string> value = db_->Get(CounterKey(i));
    if (value.ok()) {
      if (!ParseCounter(*value, &initial_counters_[i])) {
        Fail(absl::StrCat(CounterKey(i), " holds \"", Ellipsize(*value), "\", not a number"));
      }
    } else if (!absl::IsNotFound(value.status())) {
      Fail(absl::StrCat("Get(\"", CounterKey(i), "\"): ", value.status().ToString()));
    }
  }
  reports_.assign(workers, WorkerReport{});
  reported_.assign(workers, false);
  pids_.assign(workers, 0);

  absl::StatusOr<StartGate> gate = StartGate::Create();
  if (!gate.ok()) return Fail(gate.status().ToString());
  std::vector<ChildProcess> children;
  for (int i = 0; i < workers; ++i) {
    absl::StatusOr<ChildProcess> child =
        ForkChild([&](int to_parent) { return ChildMain(i, to_parent, &*gate); });
    if (!child.ok()) {
      Fail(absl::StrCat("starting worker ", i, ": ", child.status().ToString()));
      break;
    }
    children.push_back(*child);
    pids_[i] = child->pid;
  }

  // Start everyone at once, after every worker has opened the database.
  for (size_t i = 0; i < children.size(); ++i) {
    char ready = 0;
    absl::Status status = ReadAll(children[i].from_child, &ready, 1, kWorkerSlack);
    if (!status.ok()) {
      Fail(absl::StrCat("worker ", i, " did not start: ", status.ToString()));
      KillChild(children[i].pid);
    }
  }
  std::printf("running    %zu workers for %g s...\n", children.size(), config_.seconds);
  std::fflush(stdout);
  gate->Open();

  auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(config_.seconds) + kGracePeriod + kWorkerSlack);
  for (size_t i = 0; i < children.size(); ++i) {
    absl::Status status =
        ReadAll(children[i].from_child, &reports_[i], sizeof(WorkerReport), timeout);
    reported_[i] = status.ok();
    if (!status.ok()) {
      KillChild(children[i].pid);
      Fail(absl::StrCat("worker ", i, " sent no report: ", status.ToString()));
    } else if (reports_[i].failures > 0) {
      Fail(absl::StrCat("worker ", i, ": ", Commas(reports_[i].failures),
                        " failed checks; the first: ", reports_[i].first_failure));
    }
    CloseFd(children[i].from_child);
  }
  for (size_t i = 0; i < children.size(); ++i) {
    absl::Status status = WaitChild(children[i].pid);
    // A worker that reported failed checks exits with 1; that is already counted.
    if (!status.ok() && !(reported_[i] && reports_[i].failures > 0)) {
      Fail(absl::StrCat("worker ", i, " (pid ", children[i].pid, ") ", status.message()));
    }
  }
}

// Each counter must equal its start value plus the commits its worker reported: no increment lost,
// none applied twice.
void Demo::CheckCounters() {
  for (size_t i = 0; i < reports_.size(); ++i) {
    if (!reported_[i]) continue;
    std::string key = CounterKey(static_cast<int>(i));
    absl::StatusOr<std::string> value = db_->Get(key);
    uint64_t counter = 0;
    if (!value.ok() && !absl::IsNotFound(value.status())) {
      Fail(absl::StrCat("Get(\"", key, "\"): ", value.status().ToString()));
      continue;
    }
    if (value.ok() && !ParseCounter(*value, &counter)) {
      Fail(absl::StrCat(key, " holds \"", Ellipsize(*value), "\", not a number"));
      continue;
    }
    uint64_t expected = initial_counters_[i] + reports_[i].commits;
    if (counter != expected) {
      Fail(absl::StrCat(key, " is ", counter, " after the run, but it started at ",
                        initial_counters_[i], " and worker ", i, " committed ", reports_[i].commits,
                        " increments"));
    }
  }
}

void Demo::PrintTable() const {
  std::printf("\n%6s %8s %10s %10s %10s %5s %10s %10s %8s %10s  %s\n", "worker", "pid", "ops",
              "ops/s", "ops/CPU-s", "CPU%", "gets", "snapshots", "commits", "foreign", "checks");
  uint64_t ops = 0, gets = 0, snapshots = 0, commits = 0, foreign = 0, failures = 0;
  double cpu = 0, wall = 0;
  for (size_t i = 0; i < reports_.size(); ++i) {
    const WorkerReport& r = reports_[i];
    if (!reported_[i]) {
      std::printf("%6zu %8d  (no report: see below)\n", i, pids_[i]);
      ++failures;
      continue;
    }
    std::printf("%6d %8d %10s %10s %10s %5.0f %10s %10s %8s %10s  %s\n", r.worker, r.pid,
                Commas(r.ops).c_str(),
                Commas(static_cast<uint64_t>(r.ops / std::max(r.wall_seconds, 1e-9))).c_str(),
                Commas(static_cast<uint64_t>(r.ops / std::max(r.cpu_seconds, 1e-9))).c_str(),
                100 * r.cpu_seconds / std::max(r.wall_seconds, 1e-9), Commas(r.gets).c_str(),
                Commas(r.snapshots).c_str(), Commas(r.commits).c_str(),
                Commas(r.foreign_commits).c_str(),
                r.failures == 0 ? "ok" : absl::StrCat(Commas(r.failures), " FAILED").c_str());
    ops += r.ops;
    gets += r.gets;
    snapshots += r.snapshots;
    commits += r.commits;
    foreign += r.foreign_commits;
    failures += r.failures;
    cpu += r.cpu_seconds;
    wall = std::max(wall, r.wall_seconds);
  }
  std::printf("%6s %8s %10s %10s %10s %5.0f %10s %10s %8s %10s  %s\n", "total", "",
              Commas(ops).c_str(),
              Commas(static_cast<uint64_t>(ops / std::max(wall, 1e-9))).c_str(),
              Commas(static_cast<uint64_t>(ops / std::max(cpu, 1e-9))).c_str(),
              100 * cpu / std::max(wall, 1e-9), Commas(gets).c_str(), Commas(snapshots).c_str(),
              Commas(commits).c_str(), Commas(foreign).c_str(),
              failures == 0 ? "ok" : absl::StrCat(Commas(failures), " FAILED").c_str());
  std::printf(
      "\nops: gets (a sample key, value checked) + snapshots (a ReadTxn over another worker's\n"
      "counter and note) + commits (a WriteTxn incrementing the worker's own counter).\n"
      "ops/CPU-s: ops per second of the worker's user+system CPU time (getrusage).\n"
      "foreign: commits of the other workers this worker saw (advances of their counters).\n");
}

void Demo::PrintStats() {
  Clock::time_point start = Clock::now();
  absl::Status status = db_->Checkpoint();
  Clock::duration checkpoint_time = Clock::now() - start;
  if (!status.ok()) {
    Fail(absl::StrCat("Checkpoint: ", status.ToString()));
  }
  Stats s = db_->GetStats();
  uint64_t commits = 0;
  for (const WorkerReport& r : reports_) commits += r.commits;
  std::printf("\nCheckpoint() took %s; GetStats() then says:\n", Millis(checkpoint_time).c_str());
  std::printf("  keys               %s\n", Commas(s.keys).c_str());
  std::printf("  file size          %s (%s bytes), growth limit %s\n", Bytes(s.file_size).c_str(),
              Commas(s.file_size).c_str(), Bytes(s.max_file_size).c_str());
  std::printf("  log bytes          %s in use\n", Bytes(s.log_bytes).c_str());
  std::printf("  live bytes         %s (current values)\n", Bytes(s.live_bytes).c_str());
  std::printf("  garbage bytes      %s (%.1f%% of the log; reclaimed by compaction)\n",
              Bytes(s.garbage_bytes).c_str(),
              s.log_bytes == 0 ? 0.0 : 100.0 * s.garbage_bytes / s.log_bytes);
  std::printf("  index              %s slots, %s used (load %.2f)\n",
              Commas(s.index_capacity).c_str(), Commas(s.index_used).c_str(), s.index_load);
  std::printf("  commits            %s over the file's life (this run: 1 load + %s by workers)\n",
              Commas(s.commits).c_str(), Commas(commits).c_str());
  std::printf("  checkpoints        %s\n", Commas(s.checkpoints).c_str());
  std::printf(
      "  last checkpoint    %s\n",
      s.last_checkpoint_unix_ms == 0
          ? "never"
          : absl::FormatTime("%Y-%m-%d %H:%M:%E3S UTC",
                             absl::FromUnixMillis(s.last_checkpoint_unix_ms), absl::UTCTimeZone())
                .c_str());
  std::printf("  open handles       %u (all processes)\n", s.open_handles);
  std::printf("  format version     %u\n", s.format_version);
  if (s.rebuilt_index || s.recovered_commits > 0) {
    std::printf(
        "  first open         rebuilt the index: %s, %s records in %s us; %s commits "
        "recovered\n",
        s.rebuilt_index ? "yes" : "no", Commas(s.rebuild_records).c_str(),
        Commas(s.rebuild_micros).c_str(), Commas(s.recovered_commits).c_str());
  } else {
    std::printf("  first open         clean: no index rebuild, no recovered commits\n");
  }

  bool all_reported = std::all_of(reported_.begin(), reported_.end(), [](bool b) { return b; });
  if (fresh_db_ && all_reported) {
    // The records, plus per worker its counter (once it committed) and its note (once it reached
    // kNoteEvery); a data file may hold some of those keys itself.
    absl::flat_hash_set<std::string> keys;
    for (const Record& record : records_) keys.insert(record.key);
    for (size_t i = 0; i < reports_.size(); ++i) {
      uint64_t counter = initial_counters_[i] + reports_[i].commits;
      if (counter > 0) keys.insert(CounterKey(static_cast<int>(i)));
      if (counter >= kNoteEvery) keys.insert(NoteKey(static_cast<int>(i)));
    }
    if (s.keys != keys.size()) {
      Fail(absl::StrCat("GetStats().keys is ", s.keys, ", expected ", keys.size()));
    }
  }
  if (s.open_handles != 1) {
    Fail(absl::StrCat("GetStats().open_handles is ", s.open_handles,
                      " with every worker gone; expected 1 (this process)"));
  }
}

void Demo::Cleanup() {
  db_.reset();
  if (temp_dir_.empty()) return;
  std::error_code error;
  std::filesystem::remove_all(temp_dir_, error);
  if (error) {
    std::fprintf(stderr, "mapkv demo: could not remove %s: %s\n", temp_dir_.c_str(),
                 error.message().c_str());
  }
}

int Demo::Run() {
  if (!HasFork()) {
    // The workers are forked children that share the parent's loaded data and start gate; a
    // Windows demo would start `mapkv` itself once per worker instead (not written yet).
    return ReportError(
        "demo", "",
        absl::UnimplementedError("the demo forks its worker processes, and this platform "
                                 "has no fork(); every other command works here"),
        kExitUsage);
  }
  if (!LoadData()) return kExitError;
  if (!PrepareDatabase()) {
    Cleanup();
    return kExitError;
  }
  std::printf("mapkv demo: %lld worker processes for %g s on one database (%u CPUs)\n",
              static_cast<long long>(config_.workers), config_.seconds,
              std::thread::hardware_concurrency());
  std::printf("database   %s%s\n", db_path_.c_str(),
              temp_dir_.empty() ? (fresh_db_ ? " (new, kept)" : " (existing, kept)")
                                : " (temporary, removed at the end)");
  std::printf("data       %s\n", data_description_.c_str());
  if (!LoadIntoDatabase()) {
    Cleanup();
    return kExitError;
  }
  RunWorkers();
  CheckCounters();
  PrintTable();
  PrintStats();
  Cleanup();

  if (!failures_.empty()) {
    std::printf("\n");
    for (const std::string& failure : failures_) std::printf("FAILED: %s\n", failure.c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "mapkv demo: %zu check%s failed\n", failures_.size(),
                 failures_.size() == 1 ? "" : "s");
    return kExitDataProblem;
  }
  std::printf(
      "\nall checks passed: every value read matched, no counter went back, every worker\n"
      "saw every other's commits, and no increment was lost.\n");
  return kExitOk;
}

constexpr char kDescription[] =
    R"(Shows several processes sharing one mapkv database, and checks what they see:
  1. creates a database (in a new temporary directory, unless --db names a file);
  2. loads the sample records (data/iso_codes.tsv: ISO country, language, currency and
     script codes) in one write transaction, and reads them back;
  3. forks N worker processes; each opens the same file and for S seconds mixes
     - Gets of random sample keys, each value checked against the data file,
     - snapshots (a ReadTxn) of another worker's counter and note, checking that counters
       never go back, that note and counter agree, and that every worker's commits show up,
     - write transactions that increment its own "worker/<i>/counter" (read-modify-write)
       and, every 4th time, rewrite "worker/<i>/note", which the other workers read;
  4. prints per worker its ops, ops/s, ops per CPU-second and the other workers' commits it
     saw; checks each counter against the commits its worker reported; calls Checkpoint()
     and prints GetStats().
)";

std::string DefaultDataText() {
  std::vector<std::string> candidates = SampleCandidates();
  if (candidates.empty()) return "generated records";
  return absl::StrCat(candidates.front(), ", else generated records");
}

}  // namespace

Runner SetupDemo(CLI::App* app) {
  auto config = std::make_shared<DemoConfig>();
  app->description(kDescription);
  app->add_option("--db", config->db_path,
                  "database file to use (created if missing; kept afterwards). Default: a new "
                  "temporary directory, removed at the end");
  app->add_option("--workers", config->workers, "worker processes")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str();
  app->add_option("--seconds", config->seconds, "how long the workers run")
      ->check(CLI::Range(0.01, 86400.0))
      ->capture_default_str();
  app->add_option("--data", config->data_path,
                  absl::StrCat("records to load and check, in `mapkv load`'s TSV format. Default: ",
                               DefaultDataText()));
  app->footer(R"(
Exit status: 0 when every check passed, 2 bad usage, 3 a check failed (a wrong value, a lost
increment), 4 error (the database or the data file could not be opened).

Examples:
  mapkv demo
  mapkv demo --workers 8 --seconds 10 --db /tmp/demo.mapkv)");
  return [config] { return Demo(*config).Run(); };
}

}  // namespace mapkv::tools
