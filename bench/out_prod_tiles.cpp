// A LoRA weight's gradient on the CPU (patch 0012, bench/RESULTS.md "LoRA weight gradients without transposed
// copies"): dW = sum over the batch's T tokens of a[:, t] b[:, t]^T as ggml_out_prod (patch 0012's register tiles;
// ggml's own loop with GGML_COGUMI_OUT_PROD_TILES=0) against what patch 0002 computed before, ggml_mul_mat of the
// transposed copies of both operands. The nano trainer's shapes at T = 2048: a LoRA's B gradient for 768 and 256
// outputs, the A gradients of the FFN's down (768 inputs) and of the q/k/v (rank 48) and gate/up (rank 32) groups.
// Not part of the CMake build; with the pinned llama.cpp's CPU install P (scripts/deps.sh prints it):
//   g++ -O2 -std=c++17 bench/out_prod_tiles.cpp -I$P/include -L$P/lib -lggml -lggml-base -lggml-cpu \
//     -Wl,-rpath,$P/lib -o /tmp/out_prod_tiles && /tmp/out_prod_tiles && GGML_COGUMI_OUT_PROD_TILES=0 /tmp/out_prod_tiles
#include <ggml-cpu.h>
#include <ggml.h>

#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <utility>

// ms per evaluation of `c` on 2 threads (one warm-up first)
static double time_ms(ggml_context* ctx, ggml_tensor* c, int reps) {
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, c);
  ggml_graph_compute_with_ctx(ctx, g, 2);
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) ggml_graph_compute_with_ctx(ctx, g, 2);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps * 1e3;
}

int main() {
  const int T = 2048;
  std::printf("| dW = a b^T over %d tokens | out_prod ms | GFLOP/s | transposed copies + mul_mat ms | GFLOP/s |\n", T);
  std::printf("|---|---:|---:|---:|---:|\n");
  for (auto [n, m] : {std::pair{16, 768}, {16, 256}, {768, 16}, {256, 48}, {256, 32}}) {
    ggml_init_params ip{size_t(256) << 20, nullptr, false};
    ggml_context* ctx = ggml_init(ip);
    ggml_tensor* a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, T);
    ggml_tensor* b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, m, T);
    for (int64_t i = 0; i < ggml_nelements(a); ++i) ((float*)a->data)[i] = 0.01f * (i % 97);
    for (int64_t i = 0; i < ggml_nelements(b); ++i) ((float*)b->data)[i] = 0.01f * (i % 89);
    const double flop = 2.0 * n * m * T;
    const double op = time_ms(ctx, ggml_out_prod(ctx, a, b), 50);
    const double mm = time_ms(ctx, ggml_mul_mat(ctx, ggml_cont(ctx, ggml_transpose(ctx, a)),
                                                ggml_cont(ctx, ggml_transpose(ctx, b))), 50);
    std::printf("| [%d, %d] | %.3f | %.1f | %.3f | %.1f |\n", n, m, op, flop / op / 1e6, mm, flop / mm / 1e6);
    ggml_free(ctx);
  }
  std::printf("out_prod nodes that took patch 0012's tiles: %lld\n", (long long)ggml_cogumi_out_prod_tiles());
}
