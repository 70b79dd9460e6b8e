/* step_timer LIBRARY CALLS: one VM-free step library (lib/<device>/<name>.direct.so) timed from C.
 *
 * Creates the step, leaves its inputs at zero (valid for every input: last action 0, agent 0; the
 * kernels are dense, so the time does not depend on the values), runs CALLS/10 untimed calls, then
 * CALLS calls each timed with CLOCK_MONOTONIC, and prints one line:
 *   "calls N median_ns M p99_ns P mean_ns A"
 * (mean_ns: one clock pair around all CALLS calls, without the per-call clock reads). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LIBRARY CALLS\n", argv[0]);
    return 2;
  }
  void* dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  void* (*create)(void) = (void* (*)(void))dlsym(dl, "kdcc_step_create");
  int (*run)(void*) = (int (*)(void*))dlsym(dl, "kdcc_step_run");
  if (!create || !run) {
    fprintf(stderr, "%s: not a kdcc VM-free step library\n", argv[1]);
    return 1;
  }
  void* step = create();
  long calls = atol(argv[2]);
  double* ns = malloc(sizeof(double) * calls);
  for (long i = 0; i < calls / 10 + 1; ++i) run(step);
  for (long i = 0; i < calls; ++i) {
    double t0 = now_ns();
    if (run(step)) return 1;
    ns[i] = now_ns() - t0;
  }
  double t0 = now_ns();
  for (long i = 0; i < calls; ++i) run(step);
  double mean = (now_ns() - t0) / calls;
  qsort(ns, calls, sizeof(double), cmp);
  printf("calls %ld median_ns %.1f p99_ns %.1f mean_ns %.1f\n", calls, ns[calls / 2], ns[calls * 99 / 100], mean);
  return 0;
}
