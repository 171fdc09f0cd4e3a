// Patch 0020: attention's F32 panel products of the nano trainer's step (4 heads x 16 rows of 128 tokens) with and
// without the causal marks the trainer sets (bench/RESULTS.md, "Packed panels", session 35): K Q^T with Q read through
// a permute (mode 1: the tiles below the diagonal are not computed; dP = V dO has the same shape and mark) and P V
// (mode 2: each tile sums the keys up to its last query; dQ = K dS has the same shape and mark). Each line is the best
// of 30 runs on 2 threads; the modes alternate, twice. Not part of the CMake build; with the pinned llama.cpp's CPU
// install P (scripts/deps.sh prints it):
//   g++ -O2 -std=c++17 bench/causal_attention_gemm.cpp -I$P/include -L$P/lib -lggml -lggml-base -lggml-cpu \
//     -Wl,-rpath,$P/lib -o /tmp/causal_gemm && /tmp/causal_gemm
#include <ggml-cpu.h>
#include <ggml.h>
#include <chrono>
#include <cstdio>
#include <random>
int main() {
  ggml_init_params ip{size_t(1536) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  std::mt19937 rng(1); std::normal_distribution<float> nd;
  for (int shape = 0; shape < 2; ++shape) {
    ggml_tensor *a, *b;
    if (shape == 0) { a = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 64, 128, 4, 16); b = ggml_permute(ctx, ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 64, 4, 128, 16), 0, 2, 1, 3); }
    else { a = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 128, 64, 4, 16); b = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 128, 128, 4, 16); }
    ggml_tensor* bs = b->view_src ? b->view_src : b;
    for (int64_t i = 0; i < ggml_nelements(a); ++i) ((float*)a->data)[i] = nd(rng);
    for (int64_t i = 0; i < ggml_nelements(bs); ++i) ((float*)bs->data)[i] = nd(rng);
    for (int mode : {0, shape == 0 ? 1 : 2, 0, shape == 0 ? 1 : 2}) {
      ggml_tensor* d = ggml_mul_mat(ctx, a, b);
      ggml_cogumi_mul_mat_allow_small_k(d);
      ggml_cogumi_mul_mat_set_causal(d, mode);
      ggml_cgraph* g = ggml_new_graph(ctx);
      ggml_build_forward_expand(g, d);
      ggml_graph_compute_with_ctx(ctx, g, 2);
      double best = 1e9;
      for (int r = 0; r < 30; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        ggml_graph_compute_with_ctx(ctx, g, 2);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      printf("%s, mode %d: %.3f ms\n", shape == 0 ? "K Q^T [64 -> 128] x 128, Q permuted" : "P V [128 -> 64] x 128", mode, best * 1e3);
    }
  }
}
