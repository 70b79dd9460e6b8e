// step_runner LIB N OBS HIDDEN STATE ACTIONS < steps.txt
//
// Runs a team-step library (lib/<device>/policy.so) through `main_packed`, as the C API does: one step
// per input line (N*OBS observation floats, then STATE state floats), "reset" starts an episode (zero
// hidden state, last actions -1); hidden state and last actions are carried between steps. Prints each
// step's packed output [actions | q | new_hidden | q_tot] on one line. Used by the tests to run an
// aarch64 library under qemu-aarch64 and compare it with the host build.
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

int main(int argc, char** argv) {
  if (argc != 7) return 2;
  const int64_t n = std::atoll(argv[2]), obs_dim = std::atoll(argv[3]), hidden_dim = std::atoll(argv[4]),
                state_dim = std::atoll(argv[5]), actions = std::atoll(argv[6]);
  const DLDevice dev{kDLCPU, 0};
  ffi::Module lib = ffi::Module::LoadFromFile(argv[1]);
  ffi::Module vm = lib->GetFunction("vm_load_executable").value()().cast<ffi::Module>();
  vm->GetFunction("vm_initialization").value()(static_cast<int>(kDLCPU), 0, 2);
  ffi::Function step = vm->GetFunction("main_packed").value();
  ffi::Function alloc = ffi::Function::GetGlobalRequired("runtime.TVMTensorAllocWithScope");
  ffi::Function copy_from = ffi::Function::GetGlobalRequired("runtime.TVMTensorCopyFromBytes");
  ffi::Function copy_to = ffi::Function::GetGlobalRequired("runtime.TVMTensorCopyToBytes");
  auto empty = [&](ffi::Shape shape, const char* dtype) {
    return alloc(shape, ffi::StringToDLDataType(dtype), dev, ffi::Optional<ffi::String>()).cast<ffi::Tensor>();
  };
  ffi::Tensor obs = empty({n, obs_dim}, "float32"), last = empty({n}, "int64"),
              hidden = empty({n, hidden_dim}, "float32"), state = empty({state_dim}, "float32");
  std::vector<float> x(n * obs_dim), s(state_dim), h(n * hidden_dim, 0.f);
  std::vector<int64_t> a(n, -1);
  const int64_t out_size = n + n * actions + n * hidden_dim + 1;
  std::vector<float> out(out_size);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "reset") {
      std::fill(h.begin(), h.end(), 0.f);
      std::fill(a.begin(), a.end(), -1);
      continue;
    }
    std::istringstream in(line);
    for (float& v : x) in >> v;
    for (float& v : s) in >> v;
    copy_from(obs, static_cast<void*>(x.data()), static_cast<int64_t>(x.size() * sizeof(float)));
    copy_from(state, static_cast<void*>(s.data()), static_cast<int64_t>(s.size() * sizeof(float)));
    copy_from(last, static_cast<void*>(a.data()), static_cast<int64_t>(a.size() * sizeof(int64_t)));
    copy_from(hidden, static_cast<void*>(h.data()), static_cast<int64_t>(h.size() * sizeof(float)));
    ffi::Tensor result = step(obs, last, hidden, state).cast<ffi::Tensor>();
    copy_to(result, static_cast<void*>(out.data()), static_cast<int64_t>(out_size * sizeof(float)));
    for (int64_t i = 0; i < n; ++i) a[i] = static_cast<int64_t>(out[i]);
    for (int64_t i = 0; i < n * hidden_dim; ++i) h[i] = out[n + n * actions + i];
    for (int64_t i = 0; i < out_size; ++i) std::printf(i ? " %.9g" : "%.9g", out[i]);
    std::printf("\n");
  }
  return 0;
}
