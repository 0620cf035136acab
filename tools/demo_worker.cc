#include "demo_worker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "mapkv/cache.h"
#include "src/strings.h"
#include "testing/subprocess.h"

namespace mapkv::tools {
namespace {

using Clock = std::chrono::steady_clock;

using internal::ToAbsl;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The "expensive computation" of a page: busy work (CPU, not a sleep) for `us` microseconds of
// wall time, as a template engine or a database query's client would spend.
volatile uint64_t busy_sink;
void BusyWork(int64_t us) {
  if (us <= 0) return;
  const Clock::time_point end = Clock::now() + std::chrono::microseconds(us);
  uint64_t x = busy_sink;
  do {
    for (int k = 0; k < 64; ++k) x = x * 6364136223846793005ull + 1442695040888963407ull;
  } while (Clock::now() < end);
  busy_sink = x;
}

std::string Ellipsize(std::string_view s, size_t max = 80) {
  // Escaped: a page holds line feeds, and a torn one anything.
  if (s.size() <= max) return absl::CEscape(ToAbsl(s));
  return absl::StrCat(absl::CEscape(ToAbsl(s.substr(0, max))), "...");
}

std::string HeaderPrefix(std::string_view key) {
  return absl::StrCat("<!-- ", ToAbsl(key), " computed by worker ");
}

void SetFailure(DemoReport* report, std::string_view message) {
  if (report->failures++ == 0) {
    size_t n = std::min(message.size(), sizeof(report->first_failure) - 1);
    std::copy_n(message.data(), n, report->first_failure);
    report->first_failure[n] = '\0';
  }
}

}  // namespace

std::string DemoClientKey(int client) { return absl::StrCat("ratelimit/10.0.0.", client + 1); }

DemoKeySpace::DemoKeySpace(std::vector<Record> records, int64_t keys, double zipf)
    : records_(std::move(records)) {
  const size_t r = records_.size();
  keys_.reserve(keys);
  for (int64_t i = 0; i < keys; ++i) {
    keys_.push_back(absl::StrCat("page/", ToAbsl(records_[i % r].key), "/", i / r));
  }
  // A fixed seed and our own Fisher-Yates: every process (forked or started again) must draw the
  // same permutation.
  by_rank_.resize(keys);
  for (int64_t i = 0; i < keys; ++i) by_rank_[i] = static_cast<uint32_t>(i);
  std::mt19937_64 shuffle(0x6d61706b76);
  for (size_t i = by_rank_.size(); i > 1; --i) std::swap(by_rank_[i - 1], by_rank_[shuffle() % i]);
  cdf_.resize(keys);
  double sum = 0;
  for (int64_t i = 0; i < keys; ++i) {
    sum += std::pow(static_cast<double>(i + 1), -zipf);
    cdf_[i] = sum;
  }
  for (double& c : cdf_) c /= sum;
  cdf_.back() = 1;
}

uint32_t DemoKeySpace::Sample(std::mt19937_64& rng) const {
  double u = std::uniform_real_distribution<double>(0, 1)(rng);
  size_t rank = std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
  return by_rank_[std::min(rank, cdf_.size() - 1)];
}

std::string DemoKeySpace::Render(uint32_t i, int worker, uint64_t value_size) const {
  const Record& record = records_[i % records_.size()];
  const std::string& key = keys_[i];
  std::string footer = absl::StrCat("</ul>\n</body></html>\n<!-- end of ", key, " -->\n");
  std::string page =
      absl::StrCat(HeaderPrefix(key), worker, " -->\n<html><head><title>", ToAbsl(record.key),
                   "</title></head>\n<body>\n<h1>", ToAbsl(record.key), ", page ",
                   i / records_.size(), "</h1>\n<p>", ToAbsl(record.value), "</p>\n<ul>\n");
  for (uint64_t line = 1;; ++line) {
    std::string item = absl::StrCat("<li>line ", line, " of ", key, "</li>\n");
    if (page.size() + item.size() + footer.size() > value_size) break;
    page += item;
  }
  page += footer;
  return page;
}

bool DemoKeySpace::Check(uint32_t i, std::string_view value, int workers, uint64_t value_size,
                         int* worker) const {
  const std::string prefix = HeaderPrefix(keys_[i]);
  if (value.substr(0, prefix.size()) != prefix) return false;
  std::string_view rest = value.substr(prefix.size());
  size_t end = rest.find(' ');
  if (end == std::string_view::npos || end > 4) return false;
  int w = 0;
  if (!absl::SimpleAtoi(ToAbsl(rest.substr(0, end)), &w) || w < 0 || w >= workers) return false;
  *worker = w;
  return value == Render(i, w, value_size);
}

int RunDemoWorker(const DemoSettings& settings, const DemoKeySpace& keys, const std::string& path,
                  int index, int to_parent, int go_fd) {
  DemoReport report;
  report.worker = index;
  report.pid = CurrentPid();
  auto fail = [&](std::string_view message) { SetFailure(&report, message); };

  // Our own handle: a forked worker must not use the parent's.
  CacheOptions options;
  options.capacity = settings.capacity;
  options.db.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Open(path, options);
  char ready = cache.ok() ? 1 : 0;
  if (!cache.ok()) fail(absl::StrCat("Cache::Open: ", cache.status().ToString()));
  if (!WriteAll(to_parent, &ready, 1).ok()) return 1;

  std::vector<DemoCompute> computes;
  if (ready) {
    char go = 0;
    if (absl::Status status = ReadAll(go_fd, &go, 1, kDemoWorkerSlack); !status.ok()) {
      fail(absl::StrCat("waiting for the start: ", status.ToString()));
      ready = 0;
    }
  }
  if (ready) {
    const Ttl ttl =
        std::chrono::duration_cast<Ttl>(std::chrono::duration<double>(settings.ttl_seconds));
    const int workers = static_cast<int>(settings.workers);
    std::mt19937_64 rng(0x9e3779b97f4a7c15ull * (index + 1) ^ static_cast<uint64_t>(NowNanos()));
    int64_t last_count[kDemoClients] = {};
    std::vector<std::string> client_keys;
    for (int c = 0; c < kDemoClients; ++c) client_keys.push_back(DemoClientKey(c));

    const double cpu_start = ProcessCpuSeconds();
    const Clock::time_point start = Clock::now();
    const Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(settings.seconds));
    while (Clock::now() < end) {
      ++report.requests;
      if (static_cast<int64_t>(rng() % 100) < settings.increment_percent) {
        // Rate-limit style: count a request of one of the clients, atomically across the pool.
        const int client = static_cast<int>(rng() % kDemoClients);
        absl::StatusOr<int64_t> count = (*cache)->Increment(client_keys[client], 1);
        ++report.increments;
        if (!count.ok()) {
          fail(absl::StrCat("Increment(\"", client_keys[client],
                            "\"): ", count.status().ToString()));
          continue;
        }
        ++report.increments_of[client];
        if (*count <= last_count[client]) {
          fail(absl::StrCat(client_keys[client], " went from ", last_count[client], " to ", *count,
                            " though counters only go up (lost, or evicted)"));
        }
        last_count[client] = *count;
        continue;
      }

      const uint32_t i = keys.Sample(rng);
      const std::string& key = keys.key(i);
      std::optional<DemoCompute> computed;
      absl::StatusOr<std::string> value =
          (*cache)->GetOrCompute(key, ttl, [&]() -> absl::StatusOr<std::string> {
            computed = DemoCompute{i, static_cast<uint32_t>(index), NowNanos(), 0};
            BusyWork(settings.compute_us);
            std::string page = keys.Render(i, index, settings.value_size);
            computed->end_ns = NowNanos();
            return page;
          });
      ++report.gets;
      if (computed) {
        ++report.computes;
        if (computes.size() < kMaxRecordedComputes) {
          computes.push_back(*computed);
        } else {
          ++report.computes_unrecorded;
        }
      }
      if (!value.ok()) {
        fail(absl::StrCat("GetOrCompute(\"", key, "\"): ", value.status().ToString()));
        continue;
      }
      int by = -1;
      if (!keys.Check(i, *value, workers, settings.value_size, &by)) {
        fail(absl::StrCat("GetOrCompute(\"", key, "\") returned ", value->size(), " bytes \"",
                          Ellipsize(*value), "\", not that key's page"));
      } else if (by != index) {
        ++report.from_others;
      }
    }
    report.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    report.cpu_seconds = ProcessCpuSeconds() - cpu_start;
    report.computes_recorded = computes.size();
  }
  if (cache.ok()) cache->reset();  // close before reporting: its statistics reach the totals
  if (!WriteAll(to_parent, &report, sizeof(report)).ok()) return 1;
  if (!computes.empty() &&
      !WriteAll(to_parent, computes.data(), computes.size() * sizeof(DemoCompute)).ok()) {
    return 1;
  }
  return report.failures == 0 ? 0 : 1;
}

}  // namespace mapkv::tools
