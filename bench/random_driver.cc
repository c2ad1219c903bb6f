// The coverage-blind baseline for time to detection: feeds uniformly random byte strings
// (length uniform in [0, max_len]) to a fuzz target's entry point, with no feedback. Linked
// with fuzz/kvm_ops.cc it uses the same decoder and the same checks as the fuzzer; the first
// violation aborts the process, exactly as under libFuzzer.
//   usage: kvm_ops_random SEED MAX_LEN SECONDS
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SEED MAX_LEN SECONDS\n", argv[0]);
    return 2;
  }
  std::mt19937_64 rng(std::strtoull(argv[1], nullptr, 0));
  const size_t max_len = std::strtoull(argv[2], nullptr, 0);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(std::atoi(argv[3]));
  std::vector<uint8_t> buf(max_len);
  uint64_t runs = 0;
  while (std::chrono::steady_clock::now() < end) {
    const size_t n = rng() % (max_len + 1);
    for (size_t i = 0; i < n; i++) buf[i] = static_cast<uint8_t>(rng());
    LLVMFuzzerTestOneInput(buf.data(), n);
    runs++;
  }
  std::printf("no failure in %llu random inputs\n", static_cast<unsigned long long>(runs));
  return 0;
}
