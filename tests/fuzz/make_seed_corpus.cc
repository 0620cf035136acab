// Writes the open fuzzer's seed corpus (seed_corpus.h: MakeSeeds) into a directory, or with
// --reproducers the staged reproducers of tests/fuzz/regressions/ (MakeReproducers):
//   make_seed_corpus [--reproducers] <data/iso_codes.tsv> <dir>
// The seeds are written at CI time, so they always match the library being fuzzed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "seed_corpus.h"

int main(int argc, char** argv) {
  const bool reproducers = argc == 4 && std::string(argv[1]) == "--reproducers";
  if (argc != 3 && !reproducers) {
    std::fprintf(stderr, "usage: %s [--reproducers] <iso_codes.tsv> <dir>\n", argv[0]);
    return 2;
  }
  const char* tsv = argv[argc - 2];
  const std::filesystem::path out = argv[argc - 1];
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  const std::filesystem::path work = out / ".work";
  std::filesystem::create_directories(work, ec);
  if (ec) {
    std::fprintf(stderr, "%s: %s\n", work.c_str(), ec.message().c_str());
    return 1;
  }
  absl::StatusOr<std::vector<mapkv::fuzz::Seed>> seeds =
      reproducers ? mapkv::fuzz::MakeReproducers(tsv, work.string())
                  : mapkv::fuzz::MakeSeeds(tsv, work.string());
  std::filesystem::remove_all(work, ec);
  if (!seeds.ok()) {
    std::fprintf(stderr, "%s\n", seeds.status().ToString().c_str());
    return 1;
  }
  for (const mapkv::fuzz::Seed& seed : *seeds) {
    const std::filesystem::path file = out / seed.name;
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f.write(seed.input.data(), static_cast<std::streamsize>(seed.input.size()));
    f.close();
    if (!f) {
      std::fprintf(stderr, "%s: cannot write\n", file.c_str());
      return 1;
    }
    std::printf("%-34s %6zu bytes\n", seed.name.c_str(), seed.input.size());
  }
  return 0;
}
