// monitor_runner: a central station's view of a kdcc team, Q_tot from the agents' chosen Q-values.
//
// Usage: monitor_runner INPUTS [LIB_DIR]
//   LIB_DIR defaults to the bundle's lib/<device> the build was configured with (KDCC_MONITOR_LIB_DIR).
//
// INPUTS (text, "kdcc monitor inputs v1"): one team step per line, numbers separated by
// whitespace: N_AGENTS chosen Q-values (agent 0 first), then STATE_DIM state floats. Lines
// starting with '#' and blank lines are skipped.
//
// Output: one line per step: Q_tot (%.9g).
#include <kdcc_monitor.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s INPUTS [LIB_DIR]\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  const char* lib_dir = argc > 2 ? argv[2] : KDCC_MONITOR_LIB_DIR;
  kdcc_monitor* monitor = kdcc_monitor_create(lib_dir);
  if (!monitor) {
    std::fprintf(stderr, "kdcc_monitor_create(%s): %s\n", lib_dir, kdcc_monitor_last_error());
    return 1;
  }
  float chosen_q[KDCC_MONITOR_N_AGENTS], state[KDCC_MONITOR_STATE_DIM], q_tot = 0.0f;
  std::string line;
  int line_no = 0, status = 0;
  while (status == 0 && std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream values(line);
    for (float& v : chosen_q) values >> v;
    for (float& v : state) values >> v;
    if (values.fail()) {
      std::fprintf(stderr, "%s:%d: expected %d numbers\n", argv[1], line_no,
                   KDCC_MONITOR_N_AGENTS + KDCC_MONITOR_STATE_DIM);
      status = 2;
    } else if (kdcc_monitor_value(monitor, chosen_q, state, &q_tot) != 0) {
      std::fprintf(stderr, "kdcc_monitor_value: %s\n", kdcc_monitor_last_error());
      status = 1;
    } else {
      std::printf("%.9g\n", q_tot);
    }
  }
  kdcc_monitor_destroy(monitor);
  return status;
}
