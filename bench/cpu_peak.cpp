// This CPU's peak for the products the trainer runs: one core's throughput of vdpbf16ps (BF16 pair dot products
// into F32) and of F32 FMAs on 512-bit vectors, each a loop over 12 independent accumulators (no memory traffic).
// The ceiling bench/RESULTS.md's packed-panel GFLOP/s are compared with ("Packed panels: the CPU trainer 1.3x");
// times the core count for the machine. On a CPU without AVX512-BF16 it measures F32 FMAs on 256-bit vectors
// (AVX2 + FMA, the ceiling of patch 0019's AVX2 tile). Not part of the CMake build (-march=native):
//   g++ -O2 -march=native bench/cpu_peak.cpp -o /tmp/cpu_peak && /tmp/cpu_peak
#include <immintrin.h>

#include <chrono>
#include <cstdio>

#if !defined(__AVX512BF16__)
int main() {
  const long n = 200000000;
  __m256 c[12];
  for (auto& v : c) v = _mm256_setzero_ps();
  __m256 x = _mm256_set1_ps(1.0001f);
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) c[j] = _mm256_fmadd_ps(c[j], x, x);
    asm volatile("" : "+x"(x));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sum = 0, lanes[8];
  for (auto& v : c) {
    _mm256_storeu_ps(lanes, v);
    for (float l : lanes) sum += l;
  }
  std::printf("no AVX512-BF16: F32 FMA on 256-bit vectors: %.1f GFLOP/s on one core (checksum %g)\n",
              n * 12.0 * 16 / s / 1e9, sum);
  return 0;
}
#else
int main() {
  const long n = 200000000;
  __m512 acc[12];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f80);  // BF16 1.0
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
    asm volatile("" : "+v"(a));  // keeps the loop from being folded
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sum = 0;
  for (auto& x : acc) sum += _mm512_reduce_add_ps(x);
  std::printf("vdpbf16ps: %.1f GFLOP/s on one core (checksum %g)\n", n * 12.0 * 64 / s / 1e9, sum);
  __m512 c[12];
  for (auto& x : c) x = _mm512_setzero_ps();
  __m512 x = _mm512_set1_ps(1.0001f);
  t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) c[j] = _mm512_fmadd_ps(c[j], x, x);
    asm volatile("" : "+v"(x));
  }
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum = 0;
  for (auto& v : c) sum += _mm512_reduce_add_ps(v);
  std::printf("F32 FMA:   %.1f GFLOP/s on one core (checksum %g)\n", n * 12.0 * 32 / s / 1e9, sum);
  return 0;
}
#endif
