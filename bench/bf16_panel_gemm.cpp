// The CPU's BF16-weight products, tinyBLAS against patch 0017's packed panels (bench/RESULTS.md, "Packed BF16
// panels: the CPU trainer 1.5x"). The nano trainer's base-weight shapes with its 16 x 128 = 2,048 positions: gate/up
// [256 -> 768], q/k/v/o [256 -> 256], down [768 -> 256], and the output head on the gathered loss rows. A marked node
// (ggml_cogumi_mul_mat_allow_small_k, as the trainer marks its graphs) takes the panels, an unmarked one tinyBLAS, so
// both run in one process. Not part of the CMake build; with the pinned llama.cpp's CPU install P (scripts/deps.sh
// prints it):
//   g++ -O2 -std=c++17 bench/bf16_panel_gemm.cpp -I$P/include -L$P/lib -lggml -lggml-base -lggml-cpu \
//     -Wl,-rpath,$P/lib -o /tmp/bf16_panel_gemm && /tmp/bf16_panel_gemm
#include <ggml.h>
#include <ggml-cpu.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

// best-of-reps ms per ggml_mul_mat(w[k,m] BF16, x[k,n] F32) on `threads` threads; `panels`: the node is marked
static double run(int k, int m, int n, bool panels, int threads, int reps, double* checksum) {
  ggml_init_params ip{size_t(256) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* w = ggml_new_tensor_2d(ctx, GGML_TYPE_BF16, k, m);
  ggml_tensor* x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, n);
  for (int64_t i = 0; i < ggml_nelements(w); ++i) ((ggml_bf16_t*)w->data)[i] = ggml_fp32_to_bf16(0.01f * float(i % 97) - 0.4f);
  for (int64_t i = 0; i < ggml_nelements(x); ++i) ((float*)x->data)[i] = 0.02f * float(i % 89) - 0.9f;
  ggml_tensor* c = ggml_mul_mat(ctx, w, x);
  if (panels) ggml_cogumi_mul_mat_allow_small_k(c);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, c);
  // One plan, work buffer and thread pool for every repetition, as a training run keeps them: a fresh work buffer
  // per call would time its page faults too.
  ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
  ggml_threadpool* pool = ggml_threadpool_new(&tpp);
  ggml_cplan plan = ggml_graph_plan(g, threads, pool);
  std::vector<uint8_t> work(plan.work_size);
  plan.work_data = work.data();
  ggml_graph_compute(g, &plan);
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    ggml_graph_compute(g, &plan);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  ggml_threadpool_free(pool);
  double s = 0;
  for (int64_t i = 0; i < ggml_nelements(c); ++i) s += ((const float*)c->data)[i];
  *checksum = s;
  ggml_free(ctx);
  return best * 1e3;
}

int main() {
  std::printf("packed panels in this build: %s\n\n", ggml_cogumi_bf16_panel_available() ? "yes" : "no (no AVX512-BF16)");
  std::printf("| product (K -> M, N columns) | tinyBLAS ms | GFLOP/s | panels ms | GFLOP/s | speed-up | sums agree |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---|\n");
  const int shapes[][4] = {{256, 768, 2048, 0}, {256, 256, 2048, 0}, {768, 256, 2048, 0}, {256, 2368, 270, 0}};
  const char* names[] = {"gate/up 256 -> 768", "q/k/v/o 256 -> 256", "down 768 -> 256", "head 256 -> 2368"};
  for (int i = 0; i < 4; ++i) {
    const int k = shapes[i][0], m = shapes[i][1], n = shapes[i][2];
    double sum_t = 0, sum_p = 0;
    const double t = run(k, m, n, false, 2, 30, &sum_t);
    const double p = run(k, m, n, true, 2, 30, &sum_p);
    const double gf = 2.0 * k * m * n / 1e6;
    std::printf("| %s, N %d | %.3f | %.0f | %.3f | %.0f | %.2fx | %s |\n", names[i], n, t, gf / t, p, gf / p, t / p,
                std::fabs(sum_t - sum_p) <= 1e-4 * std::max(1.0, std::fabs(sum_t)) ? "yes" : "NO");
  }
  return 0;
}
