// policy_runner: steps a kdcc team policy on observations from a text file.
//
// Usage: policy_runner OBSERVATIONS [LIB_DIR]
//        policy_runner --bench N [LIB_DIR]
//   LIB_DIR defaults to the bundle's lib/<device> the build was configured with.
//   --bench N times N kdcc_policy_step calls (after N/10 untimed warm-up calls) on fixed
//   pseudo-random inputs, actions fed back, reset every 25 steps (not timed), and prints
//   one line: "steps N median_us M p99_us P mean_us A" (std::chrono::steady_clock per call),
//   then " peak_rss_kb K" where /proc/self/status gives the process's VmHWM (Linux).
//
// OBSERVATIONS (text, "kdcc observations v1"): one team step per line, numbers separated
// by whitespace: N_AGENTS*OBS_DIM observation floats (agent 0 first), then STATE_DIM state
// floats. A line "reset" starts a new episode (hidden state zeroed, no last actions);
// the file starts with one implicitly. Lines starting with '#' and blank lines are skipped.
//
// Output: one line per step: the N_AGENTS actions, then Q_tot (%.9g), space separated.
// As on a robot, each step's actions are fed back as the next step's last actions.
#include <kdcc_policy.h>

#include "bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// The policy for lib_dir, or nullptr after saying why on stderr.
static kdcc_policy* create_policy(const char* lib_dir) {
  kdcc_policy* policy = kdcc_policy_create(lib_dir);
  if (!policy) std::fprintf(stderr, "kdcc_policy_create(%s): %s\n", lib_dir, kdcc_policy_last_error());
  return policy;
}

// --bench N: latency of kdcc_policy_step as firmware calls it, one step per control tick.
static int bench(long calls, const char* lib_dir) {
  kdcc_policy* policy = create_policy(lib_dir);
  if (!policy) return 1;
  const int n = KDCC_POLICY_N_AGENTS;
  std::vector<float> obs(n * KDCC_POLICY_OBS_DIM), state(KDCC_POLICY_STATE_DIM);
  std::vector<int64_t> last(n, -1), actions(n);
  BenchInputs inputs;
  float q_tot = 0.0f;
  std::vector<double> us;
  us.reserve(static_cast<size_t>(calls));
  const long warmup = std::max(calls / 10, 1L);
  for (long i = 0; i < warmup + calls; ++i) {
    if (i % 25 == 0) {
      kdcc_policy_reset(policy);
      last.assign(n, -1);
    }
    for (float& v : obs) v = inputs.next();
    for (float& v : state) v = inputs.next();
    auto t0 = std::chrono::steady_clock::now();
    int rc = kdcc_policy_step(policy, obs.data(), last.data(), state.data(), actions.data(), &q_tot);
    auto t1 = std::chrono::steady_clock::now();
    if (rc != 0) {
      std::fprintf(stderr, "kdcc_policy_step: %s\n", kdcc_policy_last_error());
      kdcc_policy_destroy(policy);
      return 1;
    }
    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    last = actions;
  }
  kdcc_policy_destroy(policy);
  print_latency(us, calls);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--bench") == 0) {
    long calls = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 0;
    if (calls < 1) {
      std::fprintf(stderr, "usage: %s --bench N [LIB_DIR] (N >= 1)\n", argv[0]);
      return 2;
    }
    return bench(calls, argc > 3 ? argv[3] : KDCC_POLICY_LIB_DIR);
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OBSERVATIONS [LIB_DIR]\n       %s --bench N [LIB_DIR]\n", argv[0], argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  const char* lib_dir = argc > 2 ? argv[2] : KDCC_POLICY_LIB_DIR;
  kdcc_policy* policy = create_policy(lib_dir);
  if (!policy) return 1;
  const int n = KDCC_POLICY_N_AGENTS;
  std::vector<float> obs(n * KDCC_POLICY_OBS_DIM), state(KDCC_POLICY_STATE_DIM);
  std::vector<int64_t> last(n, -1), actions(n);
  float q_tot = 0.0f;
  std::string line;
  int line_no = 0, status = 0;
  while (status == 0 && std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("reset", 0) == 0) {
      kdcc_policy_reset(policy);
      last.assign(n, -1);
      continue;
    }
    std::istringstream values(line);
    for (float& v : obs) values >> v;
    for (float& v : state) values >> v;
    if (values.fail()) {
      std::fprintf(stderr, "%s:%d: expected %zu numbers\n", argv[1], line_no, obs.size() + state.size());
      status = 2;
      break;
    }
    if (kdcc_policy_step(policy, obs.data(), last.data(), state.data(), actions.data(), &q_tot) != 0) {
      std::fprintf(stderr, "kdcc_policy_step: %s\n", kdcc_policy_last_error());
      status = 1;
      break;
    }
    for (int i = 0; i < n; ++i) std::printf("%lld ", static_cast<long long>(actions[i]));
    std::printf("%.9g\n", q_tot);
    last = actions;
  }
  kdcc_policy_destroy(policy);
  return status;
}
