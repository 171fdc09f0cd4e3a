#include "core/eigen_setup.h"

#include <mutex>

#include <Eigen/Core>

namespace cogumi {

void eigen_setup() {
  static std::once_flag once;
  std::call_once(once, [] {
    Eigen::initParallel();
    // A common x86 configuration; any fixed values give the same blocking, hence the same sums, everywhere.
    Eigen::setCpuCacheSizes(32 << 10, 256 << 10, 2 << 20);
  });
}

EigenCacheSizes eigen_cache_sizes() {
  return {long(Eigen::l1CacheSize()), long(Eigen::l2CacheSize()), long(Eigen::l3CacheSize())};
}

}  // namespace cogumi
