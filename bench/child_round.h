// A round of forked worker processes that start together and report back: the multi-process
// phases of bench/peer_bench.cc. The OS calls are in testing/subprocess.h.
#ifndef MAPKV_BENCH_CHILD_ROUND_H_
#define MAPKV_BENCH_CHILD_ROUND_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "testing/subprocess.h"

namespace mapkv::bench {

// Forks n children. Child i runs body(i, report, wait_for_start): it prepares (opens its handle,
// warms up), calls wait_for_start() (which returns once every child is ready and the parent has
// opened the gate), does its work, and fills `report`. What it returns, if not OK, goes back in
// report.error, and the round fails with it. `Report` is trivially copyable (it crosses a pipe)
// with a `char error[N]` member. `work` is how long a child works: the parent waits that long plus
// a minute for each report, then kills a child that has not answered.
template <class Report>
absl::StatusOr<std::vector<Report>> RunChildRound(
    size_t n, std::chrono::duration<double> work,
    absl::FunctionRef<absl::Status(size_t i, Report& report,
                                   absl::FunctionRef<absl::Status()> wait_for_start)>
        body) {
  static_assert(std::is_trivially_copyable_v<Report>);
  constexpr auto kReadyTimeout = std::chrono::seconds(120);
  absl::StatusOr<tools::StartGate> gate = tools::StartGate::Create();
  if (!gate.ok()) return gate.status();

  std::vector<tools::ChildProcess> children;
  absl::Status failure;
  for (size_t i = 0; i < n && failure.ok(); ++i) {
    absl::StatusOr<tools::ChildProcess> child = tools::ForkChild([&](int to_parent) {
      Report report{};
      bool signalled = false;
      auto wait_for_start = [&]() -> absl::Status {
        signalled = true;
        const char ready = 1;
        if (absl::Status s = tools::WriteAll(to_parent, &ready, 1); !s.ok()) return s;
        return gate->Wait();
      };
      absl::Status s = body(i, report, wait_for_start);
      if (!s.ok()) {
        const std::string text = s.ToString();
        std::memcpy(report.error, text.data(), std::min(text.size(), sizeof(report.error) - 1));
      }
      const char not_ready = 0;
      if (!signalled && !tools::WriteAll(to_parent, &not_ready, 1).ok()) return 1;
      return tools::WriteAll(to_parent, &report, sizeof(report)).ok() ? 0 : 1;
    });
    if (!child.ok()) {
      failure = child.status();
    } else {
      children.push_back(*child);
    }
  }
  for (const tools::ChildProcess& child : children) {
    char ready = 0;
    if (absl::Status s = tools::ReadAll(child.from_child, &ready, 1, kReadyTimeout); !s.ok()) {
      if (failure.ok())
        failure = absl::InternalError(absl::StrCat("a worker did not start: ", s.ToString()));
    }
  }
  gate->Open();

  const auto timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(work + std::chrono::seconds(60));
  std::vector<Report> reports(children.size());
  for (size_t i = 0; i < children.size(); ++i) {
    absl::Status s = tools::ReadAll(children[i].from_child, &reports[i], sizeof(Report), timeout);
    if (!s.ok()) {
      tools::KillChild(children[i].pid);
      if (failure.ok()) {
        failure = absl::InternalError(
            absl::StrCat("worker pid ", children[i].pid, " sent no report: ", s.ToString()));
      }
    } else if (reports[i].error[0] != '\0' && failure.ok()) {
      failure =
          absl::InternalError(absl::StrCat("worker pid ", children[i].pid, ": ", reports[i].error));
    }
    tools::CloseFd(children[i].from_child);
  }
  for (const tools::ChildProcess& child : children) {
    if (absl::Status s = tools::WaitChild(child.pid); !s.ok() && failure.ok()) {
      failure = absl::InternalError(absl::StrCat("worker pid ", child.pid, " ", s.message()));
    }
  }
  if (!failure.ok()) return failure;
  return reports;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_CHILD_ROUND_H_
