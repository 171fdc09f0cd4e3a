// cogumi/core: Eigen set up once per process so that its products give the same bits on any machine.
//
// Eigen's matrix products sum in blocks whose depth it derives from the CPU's cache sizes, read at run time: the same
// product could round differently on a CPU with a 48 KiB L1 than on one with 32 KiB. eigen_setup() fixes those sizes
// (and prepares Eigen for use from several threads); the library also never lets Eigen start threads of its own
// (EIGEN_DONT_PARALLELIZE, src/CMakeLists.txt). Call it before any Eigen product; it is cheap after the first call
// and safe from any thread.
#pragma once

namespace cogumi {

void eigen_setup();

// The L1, L2 and L3 sizes in bytes Eigen's blocking follows now (tests: eigen_setup's after any Eigen user ran).
struct EigenCacheSizes {
  long l1 = 0, l2 = 0, l3 = 0;
};
EigenCacheSizes eigen_cache_sizes();

}  // namespace cogumi
