// bench.h: the --bench report the example runners share (one line on stdout).
#ifndef KDCC_EXAMPLE_BENCH_H_
#define KDCC_EXAMPLE_BENCH_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

// Pseudo-random floats in [-1, 1) (an LCG): the same inputs on every run.
struct BenchInputs {
  uint32_t seed = 12345u;
  float next() {
    seed = seed * 1664525u + 1013904223u;
    return static_cast<float>(seed >> 8) / 8388608.0f - 1.0f;
  }
};

// "steps N median_us M p99_us P mean_us A peak_rss_kb K" from per-call times in microseconds;
// the peak resident set is /proc/self/status's VmHWM (Linux).
inline void print_latency(std::vector<double> us, long calls) {
  double mean = 0.0;
  for (double v : us) mean += v;
  mean /= static_cast<double>(us.size());
  std::sort(us.begin(), us.end());
  const double median = us[us.size() / 2], p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  std::printf("steps %ld median_us %.4f p99_us %.4f mean_us %.4f", calls, median, p99, mean);
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) std::printf(" peak_rss_kb %ld", std::strtol(line.c_str() + 6, nullptr, 10));
  }
  std::printf("\n");
}

#endif  // KDCC_EXAMPLE_BENCH_H_
