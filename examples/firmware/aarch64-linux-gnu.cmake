# CMake toolchain file for the Orin's CPU (Debian/Ubuntu: apt-get install g++-aarch64-linux-gnu).
#   cmake -S examples/firmware -B build/fw-arm -DCMAKE_TOOLCHAIN_FILE=examples/firmware/aarch64-linux-gnu.cmake \
#         -Dkdcc_policy_DIR=$PWD/build/bundle
# Run on the Orin, or here with: qemu-aarch64 -L /usr/aarch64-linux-gnu build/fw-arm/policy_runner obs.txt
# (GCC's libstdc++, like the TVM runtime's: C++ exceptions cross the runtime's boundary.)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
