// The CPU trainer's products, ggml's kernels against patches 0017 and 0019's packed panels (bench/RESULTS.md,
// "Packed panels: the CPU trainer 1.5x"). The nano trainer's shapes with its 16 x 128 = 2,048 positions: the BF16
// base weights gate/up [256 -> 768], q/k/v/o [256 -> 256], down [768 -> 256] and the output head on the gathered
// loss rows; the F32 attention products over 4 heads x 16 rows (K Q^T with Q read through a permute, V^T P) and
// LoRA shrinks A x. A node marked as the trainer marks its graphs (ggml_cogumi_mul_mat_allow_small_k) takes the
// panels, the same product unmarked ggml's own kernels (tinyBLAS; for K Q^T's permuted operand, ggml's dot products).
// The F32 base shapes (a CPU without AVX512-BF16 holds the base in F32) and a rank-16 LoRA's up-projections B (A x)
// (K = 16: the panels' since session 34). Run a second time with GGML_COGUMI_F32_PANEL=0: its "marked" column is what
// the trainer took before patch 0019 (tinyBLAS, or patch 0011's row sums for K Q^T and K = 16). Not part of the CMake
// build; with the pinned llama.cpp's CPU install P (scripts/deps.sh prints it):
//   g++ -O2 -std=c++17 bench/bf16_panel_gemm.cpp -I$P/include -L$P/lib -lggml -lggml-base -lggml-cpu \
//     -Wl,-rpath,$P/lib -o /tmp/panel_gemm && /tmp/panel_gemm && GGML_COGUMI_F32_PANEL=0 /tmp/panel_gemm
#include <ggml.h>
#include <ggml-cpu.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

struct Shape {
  const char* name;
  ggml_type type;
  int k, m, n, heads, seqs;
  bool permuted;  // src1 [k, n, heads, seqs] read from [k, heads, n, seqs]
};

// best-of-reps ms per ggml_mul_mat on `threads` threads; `mark`: marked as a training graph's product
static double run(const Shape& s, bool mark, int threads, int reps, double* checksum) {
  ggml_init_params ip{size_t(256) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* w = ggml_new_tensor_4d(ctx, s.type, s.k, s.m, s.heads, s.seqs);
  ggml_tensor* x = s.permuted ? ggml_permute(ctx, ggml_new_tensor_4d(ctx, GGML_TYPE_F32, s.k, s.heads, s.n, s.seqs), 0, 2, 1, 3)
                              : ggml_new_tensor_4d(ctx, GGML_TYPE_F32, s.k, s.n, s.heads, s.seqs);
  ggml_tensor* xs = x->view_src ? x->view_src : x;
  for (int64_t i = 0; i < ggml_nelements(w); ++i) {
    const float v = 0.01f * float(i % 97) - 0.4f;
    if (s.type == GGML_TYPE_BF16) ((ggml_bf16_t*)w->data)[i] = ggml_fp32_to_bf16(v);
    else ((float*)w->data)[i] = v;
  }
  for (int64_t i = 0; i < ggml_nelements(xs); ++i) ((float*)xs->data)[i] = 0.02f * float(i % 89) - 0.9f;
  ggml_tensor* c = ggml_mul_mat(ctx, w, x);
  if (mark) ggml_cogumi_mul_mat_allow_small_k(c);
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
  double sum = 0;
  for (int64_t i = 0; i < ggml_nelements(c); ++i) sum += ((const float*)c->data)[i];
  *checksum = sum;
  ggml_free(ctx);
  return best * 1e3;
}

int main() {
  const char* env = std::getenv("GGML_COGUMI_F32_PANEL");
  const bool f32_off = env && std::string_view(env) == "0";
  std::printf("panels in this build: BF16 %s, F32 %s%s\n\n", ggml_cogumi_bf16_panel_available() ? "yes" : "no",
              ggml_cogumi_f32_panel_available() ? "yes" : "no", f32_off ? " (off: GGML_COGUMI_F32_PANEL=0)" : "");
  std::printf("| product (K -> M, N columns) | unmarked ms | GFLOP/s | marked ms | GFLOP/s | speed-up | sums agree |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---|\n");
  const Shape shapes[] = {
      {"BF16 gate/up 256 -> 768", GGML_TYPE_BF16, 256, 768, 2048, 1, 1, false},
      {"BF16 q/k/v/o 256 -> 256", GGML_TYPE_BF16, 256, 256, 2048, 1, 1, false},
      {"BF16 down 768 -> 256", GGML_TYPE_BF16, 768, 256, 2048, 1, 1, false},
      {"BF16 head 256 -> 2368", GGML_TYPE_BF16, 256, 2368, 270, 1, 1, false},
      {"F32 K Q^T 64 -> 128 (x64, Q permuted)", GGML_TYPE_F32, 64, 128, 128, 4, 16, true},
      {"F32 V^T P 128 -> 64 (x64)", GGML_TYPE_F32, 128, 64, 128, 4, 16, false},
      {"F32 LoRA A x 256 -> 16", GGML_TYPE_F32, 256, 16, 2048, 1, 1, false},
      {"F32 LoRA A x 768 -> 16", GGML_TYPE_F32, 768, 16, 2048, 1, 1, false},
      // a CPU without AVX512-BF16 holds the base in F32 (the trainer's --base-weights auto)
      {"F32 gate/up 256 -> 768", GGML_TYPE_F32, 256, 768, 2048, 1, 1, false},
      {"F32 q/k/v/o 256 -> 256", GGML_TYPE_F32, 256, 256, 2048, 1, 1, false},
      {"F32 down 768 -> 256", GGML_TYPE_F32, 768, 256, 2048, 1, 1, false},
      // a rank-16 LoRA's up-projections B (A x)
      {"F32 LoRA B 16 -> 768", GGML_TYPE_F32, 16, 768, 2048, 1, 1, false},
      {"F32 LoRA B 16 -> 256", GGML_TYPE_F32, 16, 256, 2048, 1, 1, false},
  };
  for (const Shape& s : shapes) {
    double sum_b = 0, sum_m = 0;
    const double b = run(s, false, 2, 30, &sum_b);
    const double m = run(s, true, 2, 30, &sum_m);
    const double gf = 2.0 * s.k * s.m * s.n * s.heads * s.seqs / 1e6;
    std::printf("| %s, N %d | %.3f | %.0f | %.3f | %.0f | %.2fx | %s |\n", s.name, s.n, b, gf / b, m, gf / m, b / m,
                std::fabs(sum_b - sum_m) <= 1e-4 * std::max(1.0, std::fabs(sum_b)) ? "yes" : "NO");
  }
  return 0;
}
