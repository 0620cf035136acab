// The in-memory references: absl::flat_hash_map and std::unordered_map of std::string to
// std::string, behind the KvStore interface (bench/kv_store.h), to show how far each store is from
// a hash table in the process's own heap. No files, no locks, no checksums, no durability: the
// distance to the limit, not a peer. reserve()d for the expected keys (their best practice, as
// presizing is for the stores that have it). Single-process phases only.
#ifndef MAPKV_BENCH_KV_MEMORY_H_
#define MAPKV_BENCH_KV_MEMORY_H_

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/kv_store.h"

namespace mapkv::bench {

template <class Map>
class MemoryKv : public KvStore {
 public:
  explicit MemoryKv(Map* map) : map_(map) {}

  absl::Status Put(std::string_view key, std::string_view value) override {
    (*map_)[std::string(key)].assign(value.data(), value.size());
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    auto it = map_->find(Key(key));
    if (it == map_->end()) return absl::NotFoundError("key not found");
    value->assign(it->second);
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    map_->erase(Key(key));
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    for (const auto& [k, v] : *map_) fn(k, v);
    return map_->size();
  }

  absl::Status Sync() override { return absl::OkStatus(); }

 private:
  // flat_hash_map looks up a string_view without a copy; std::unordered_map (before C++20's
  // heterogeneous lookup for unordered containers, which needs a transparent hash) takes a string.
  static auto Key(std::string_view key) {
    if constexpr (std::is_same_v<Map, std::unordered_map<std::string, std::string>>) {
      return std::string(key);
    } else {
      return absl::string_view(key.data(), key.size());  // Debian's abseil: not std::string_view
    }
  }

  Map* map_;
};

template <class Map>
class MemoryBackend : public KvBackend {
 public:
  explicit MemoryBackend(uint64_t expected_keys) { map_.reserve(expected_keys); }
  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access) override {
    return std::make_unique<MemoryKv<Map>>(&map_);
  }

 private:
  Map map_;
};

template <class Map>
StoreKind MemoryKind(std::string name) {
  StoreKind kind;
  kind.name = std::move(name);
  kind.settings = "in the benchmark's heap, reserve()d; std::string keys and values";
  kind.caps = {.multi_reader = false, .reader_with_writer = false, .on_disk = false};
  kind.create = [](const std::string&,
                   uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<MemoryBackend<Map>>(expected_keys);
  };
  return kind;
}

inline StoreKind FlatHashMapKind() {
  return MemoryKind<absl::flat_hash_map<std::string, std::string>>("absl::flat_hash_map");
}
inline StoreKind UnorderedMapKind() {
  return MemoryKind<std::unordered_map<std::string, std::string>>("std::unordered_map");
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_MEMORY_H_
