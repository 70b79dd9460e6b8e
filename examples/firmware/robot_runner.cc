// robot_runner: one robot of a kdcc team, stepping its own agent on its own observations.
//
// Usage: robot_runner AGENT OBSERVATIONS [LIB_DIR]
//        robot_runner AGENT --bench N [LIB_DIR]
//   AGENT is this robot's agent index in the team; the build links one role's target
//   (kdcc_policy::<role>), so only that role's agents are accepted. LIB_DIR defaults to the
//   bundle's lib/<device> the build was configured with (KDCC_AGENT_LIB_DIR).
//   --bench N times N kdcc_agent_step calls (after N/10 untimed warm-up calls) on fixed
//   pseudo-random observations, reset every 25 steps (not timed), and prints one line:
//   "steps N median_us M p99_us P mean_us A peak_rss_kb K" (std::chrono::steady_clock per call).
//
// OBSERVATIONS (text, "kdcc agent observations v1"): one step per line, this agent's own
// kdcc_agent_obs_size(AGENT) observation floats separated by whitespace. A line "reset" starts
// a new episode; the file starts with one implicitly. Lines starting with '#' and blank lines
// are skipped. Nothing else is read: no other agent's data, no global state, no last action
// (the agent remembers its own).
//
// Output: one line per step: the action, then its kdcc_agent_n_actions(AGENT) Q-values (%.9g).
#include <kdcc_agent.h>

#include "bench.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// The agent for lib_dir, or nullptr after saying why on stderr.
static kdcc_agent* create_agent(const char* lib_dir, int index) {
  kdcc_agent* agent = kdcc_agent_create(lib_dir, index);
  if (!agent) std::fprintf(stderr, "kdcc_agent_create(%s, %d): %s\n", lib_dir, index, kdcc_agent_last_error());
  return agent;
}

// --bench N: latency of kdcc_agent_step as the robot calls it, one step per control tick.
static int bench(int index, long calls, const char* lib_dir) {
  kdcc_agent* agent = create_agent(lib_dir, index);
  if (!agent) return 1;
  std::vector<float> obs(kdcc_agent_obs_size(index));
  BenchInputs inputs;
  int64_t action = 0;
  std::vector<double> us;
  us.reserve(static_cast<size_t>(calls));
  const long warmup = std::max(calls / 10, 1L);
  for (long i = 0; i < warmup + calls; ++i) {
    if (i % 25 == 0) kdcc_agent_reset(agent);
    for (float& v : obs) v = inputs.next();
    auto t0 = std::chrono::steady_clock::now();
    int rc = kdcc_agent_step(agent, obs.data(), &action);
    auto t1 = std::chrono::steady_clock::now();
    if (rc != 0) {
      std::fprintf(stderr, "kdcc_agent_step: %s\n", kdcc_agent_last_error());
      kdcc_agent_destroy(agent);
      return 1;
    }
    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  kdcc_agent_destroy(agent);
  print_latency(us, calls);
  return 0;
}

static int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s AGENT OBSERVATIONS [LIB_DIR]\n       %s AGENT --bench N [LIB_DIR]\n", argv0, argv0);
  return 2;
}

int main(int argc, char** argv) {
  if (argc < 3) return usage(argv[0]);
  char* end = nullptr;
  const long index = std::strtol(argv[1], &end, 10);
  if (*end != '\0') return usage(argv[0]);
  if (std::strcmp(argv[2], "--bench") == 0) {
    long calls = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 0;
    if (calls < 1) return usage(argv[0]);
    return bench(static_cast<int>(index), calls, argc > 4 ? argv[4] : KDCC_AGENT_LIB_DIR);
  }
  std::ifstream in(argv[2]);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[2]);
    return 2;
  }
  kdcc_agent* agent = create_agent(argc > 3 ? argv[3] : KDCC_AGENT_LIB_DIR, static_cast<int>(index));
  if (!agent) return 1;
  std::vector<float> obs(kdcc_agent_obs_size(static_cast<int>(index)));
  std::vector<float> q(kdcc_agent_n_actions(static_cast<int>(index)));
  int64_t action = 0;
  std::string line;
  int line_no = 0, status = 0;
  while (status == 0 && std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("reset", 0) == 0) {
      kdcc_agent_reset(agent);
      continue;
    }
    std::istringstream values(line);
    for (float& v : obs) values >> v;
    if (values.fail()) {
      std::fprintf(stderr, "%s:%d: expected %zu numbers\n", argv[2], line_no, obs.size());
      status = 2;
      break;
    }
    if (kdcc_agent_step_q(agent, obs.data(), &action, q.data()) != 0) {
      std::fprintf(stderr, "kdcc_agent_step_q: %s\n", kdcc_agent_last_error());
      status = 1;
      break;
    }
    std::printf("%lld", static_cast<long long>(action));
    for (float v : q) std::printf(" %.9g", v);
    std::printf("\n");
  }
  kdcc_agent_destroy(agent);
  return status;
}
