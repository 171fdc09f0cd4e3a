// The CPU's F32 products with a short inner dimension, ggml's kernels against patch 0011's row sums
// (bench/RESULTS.md, "The CPU trainer: short products and F32 weights"). The nano trainer's shapes: a LoRA's
// B (A x) at rank 16 for 768 and 256 outputs, a q/k/v group's rank 48, attention's QK^T with a permuted
// operand. Patch 0019's F32 panels (which take K >= 16 first on AVX2/AVX-512 builds since session 34) are turned
// off here (GGML_COGUMI_F32_PANEL=0) so that the marked column is patch 0011's; bench/bf16_panel_gemm.cpp times the
// panels. Not part of the CMake build; with the pinned llama.cpp's CPU install P (scripts/deps.sh prints it):
//   g++ -O2 -std=c++17 bench/small_k_matmul.cpp -I$P/include -L$P/lib -lggml -lggml-base -lggml-cpu \
//     -Wl,-rpath,$P/lib -o /tmp/small_k_matmul && /tmp/small_k_matmul
#include <ggml.h>
#include <ggml-cpu.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
// ms per ggml_mul_mat(a[k,m,h,bt], b[k,n,h,bt]) on 2 threads; `permuted`: b read through a permute (not contiguous)
static double run(int k, int m, int n, int h, int bt, bool permuted, bool row_sums, int reps) {
  ggml_init_params ip{size_t(512) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* a = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, k, m, h, bt);
  ggml_tensor* b = permuted ? ggml_permute(ctx, ggml_new_tensor_4d(ctx, GGML_TYPE_F32, k, h, n, bt), 0, 2, 1, 3)
                            : ggml_new_tensor_4d(ctx, GGML_TYPE_F32, k, n, h, bt);
  ggml_tensor* bs = b->view_src ? b->view_src : b;
  for (int64_t i = 0; i < ggml_nelements(a); ++i) ((float*)a->data)[i] = 0.01f * (i % 97);
  for (int64_t i = 0; i < ggml_nelements(bs); ++i) ((float*)bs->data)[i] = 0.02f * (i % 89);
  ggml_tensor* c = ggml_mul_mat(ctx, a, b);
  if (row_sums) ggml_cogumi_mul_mat_allow_small_k(c);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, c);
  ggml_graph_compute_with_ctx(ctx, g, 2);
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) ggml_graph_compute_with_ctx(ctx, g, 2);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  ggml_free(ctx);
  return s;
}
int main() {
  setenv("GGML_COGUMI_F32_PANEL", "0", 1);  // read once, at the first marked product
  unsigned csr = __builtin_ia32_stmxcsr();
  __builtin_ia32_ldmxcsr(csr | 0x8040);  // FTZ + DAZ, as engine_init sets them
  struct Shape { const char* what; int k, m, n, h, bt; bool permuted; } shapes[] = {
      {"LoRA B (A x), 768 outputs", 16, 768, 2048, 1, 1, false},
      {"LoRA B (A x), 256 outputs", 16, 256, 2048, 1, 1, false},
      {"q/k/v group's A^T g", 48, 256, 2048, 1, 1, false},  // K 48: past the contiguous limit, ggml's kernel both ways
                                                               // (the panels' since patch 0019, off here)
      {"attention QK^T, permuted q", 64, 128, 128, 4, 16, true},
  };
  std::printf("| product | ggml ms | GFLOP/s | row sums ms | GFLOP/s | speed-up |\n|---|---:|---:|---:|---:|---:|\n");
  for (const Shape& s : shapes) {
    const double flop = 2.0 * s.k * s.m * s.n * s.h * s.bt;
    const double t_ggml = run(s.k, s.m, s.n, s.h, s.bt, s.permuted, false, 50);
    const int64_t before = ggml_cogumi_small_k_mul_mats();
    const double t_rows = run(s.k, s.m, s.n, s.h, s.bt, s.permuted, true, 50);
    const bool took = ggml_cogumi_small_k_mul_mats() > before;
    std::printf("| %s: [%d,%d] x [%d,%d]%s | %.3f | %.1f | %.3f%s | %.1f | %.2fx |\n", s.what, s.k, s.m, s.k, s.n,
                s.h * s.bt > 1 ? " x 64 heads" : "", t_ggml * 1e3, flop / t_ggml / 1e9, t_rows * 1e3,
                took ? "" : " (not taken)", flop / t_rows / 1e9, t_ggml / t_rows);
  }
}
