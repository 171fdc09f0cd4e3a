// One ggml matmul of the nano trainer's attention shape, with ordinary and with denormal inputs, with and without
// flushing denormals (bench/RESULTS.md, "Denormals"). Not part of the CMake build; with the pinned llama.cpp's
// CPU install P (scripts/deps.sh prints it):
//   g++ -O2 -std=c++17 bench/denormal_matmul.cpp -I$P/include -L$P/lib -lggml -lggml-base -lggml-cpu \
//     -Wl,-rpath,$P/lib -o /tmp/denormal_matmul && /tmp/denormal_matmul && /tmp/denormal_matmul ftz
#include <ggml.h>
#include <ggml-cpu.h>
#include <chrono>
#include <cstdio>
#include <vector>
// times ggml_mul_mat(a[k,m,h,b], b[k,n,h,b]) on the CPU, 2 threads
static double run(int k, int m, int n, int h, int bt, int reps, bool denorm = false) {
  ggml_init_params ip{size_t(512) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* a = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, k, m, h, bt);
  ggml_tensor* b = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, k, n, h, bt);
  for (int64_t i = 0; i < ggml_nelements(a); ++i) ((float*)a->data)[i] = 0.01f * (i % 97);
  for (int64_t i = 0; i < ggml_nelements(b); ++i) ((float*)b->data)[i] = denorm && i % 2 ? 1e-40f : 0.02f * (i % 89);
  ggml_tensor* c = ggml_mul_mat(ctx, a, b);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, c);
  ggml_graph_compute_with_ctx(ctx, g, 2);
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) ggml_graph_compute_with_ctx(ctx, g, 2);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  double gf = 2.0 * k * m * n * h * bt / s / 1e9;
  std::printf("%s a[%d,%d,%d,%d] x b[%d,%d,%d,%d]: %.3f ms, %.1f GFLOP/s\n", denorm ? "denormal b" : "normal b  ", k, m, h, bt, k, n, h, bt, s * 1e3, gf);
  ggml_free(ctx);
  return s;
}
int main(int argc, char**) {
  if (argc > 1) { unsigned csr = __builtin_ia32_stmxcsr(); __builtin_ia32_ldmxcsr(csr | 0x8040); std::printf("FTZ/DAZ on\n"); }
  run(128, 64, 128, 4, 16, 20);
  run(128, 64, 128, 4, 16, 5, true);
  run(768, 256, 2048, 1, 1, 10);
}
