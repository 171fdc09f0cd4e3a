// Checks and times the fused flash-attention backward (fattn-back.cuh, patch 0009's kernels) on its own:
// gradients against a double-precision reference on small shapes (causal and packed-document masks,
// grouped-query heads, lengths not a multiple of 64), then the kernels' time on the 1B (D 64, 4 x 1024,
// 32 heads, 8 KV heads) and 8B (D 128, 1 x 2048) training shapes.
//   nvcc -O3 -std=c++17 -arch=sm_90 -I<patched llama.cpp>/ggml/src/ggml-cuda check.cu -o check && ./check
// (patches/0009-flash-attn-ext-backward.patch adds the header; FABCHECK=1 bench/device.sh train runs this)
#include "fattn-back.cuh"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)

struct Shape { int D, Tq, H, Hkv, S; bool docs; };

struct Host {
    Shape sh;
    std::vector<float> q, o, d;          // q [D, T, H, S]; o, d [D, H, T, S]
    std::vector<half> k, v, mask;        // k, v [D, T, Hkv, S]; mask [T, T, 1, S]
    std::vector<double> dq, dk, dv;      // reference
};

static float hm(const Host & x, int i, int j, int s) { return __half2float(x.mask[((size_t) s * x.sh.Tq + i) * x.sh.Tq + j]); }

static Host make(Shape sh, unsigned seed, bool reference) {
    Host x; x.sh = sh;
    const int D = sh.D, T = sh.Tq, H = sh.H, Hk = sh.Hkv, S = sh.S;
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    x.q.resize((size_t) D * T * H * S); x.d.resize((size_t) D * H * T * S); x.o.assign(x.d.size(), 0.0f);
    x.k.resize((size_t) D * T * Hk * S); x.v.resize(x.k.size()); x.mask.resize((size_t) T * T * S);
    for (auto & f : x.q) f = nd(rng);
    for (auto & f : x.d) f = 1e-3f * nd(rng);  // gradients are small: BF16 keeps their range
    for (auto & f : x.k) f = __float2half(nd(rng));
    for (auto & f : x.v) f = __float2half(nd(rng));
    for (int s = 0; s < S; ++s)
        for (int i = 0; i < T; ++i)
            for (int j = 0; j < T; ++j) {
                // causal; with docs, also cut at document starts every 77 tokens (offset per sequence)
                bool open = j <= i;
                if (sh.docs) open = open && (j + 13 * s) / 77 == (i + 13 * s) / 77;
                x.mask[((size_t) s * T + i) * T + j] = __float2half(open ? 0.0f : -INFINITY);
            }
    const double scale = 1.0 / std::sqrt((double) D);
    const int G = H / Hk;
    if (reference) { x.dq.assign(x.q.size(), 0); x.dk.assign(x.k.size(), 0); x.dv.assign(x.k.size(), 0); }
    std::vector<double> p(T), dp(T);
    for (int s = 0; s < S && reference; ++s)
        for (int h = 0; h < H; ++h) {
            const int hk = h / G;
            auto Q = [&](int i, int c) { return (double) x.q[(((size_t) s * H + h) * T + i) * D + c]; };
            auto K = [&](int j, int c) { return (double) __half2float(x.k[(((size_t) s * Hk + hk) * T + j) * D + c]); };
            auto V = [&](int j, int c) { return (double) __half2float(x.v[(((size_t) s * Hk + hk) * T + j) * D + c]); };
            auto OD = [&](int i) { return (((size_t) s * T + i) * H + h) * D; };
            for (int i = 0; i < T; ++i) {
                double mx = -INFINITY;
                for (int j = 0; j < T; ++j) {
                    double sc = 0;
                    for (int c = 0; c < D; ++c) sc += Q(i, c) * K(j, c);
                    p[j] = sc * scale + hm(x, i, j, s);
                    mx = std::max(mx, p[j]);
                }
                double sum = 0;
                for (int j = 0; j < T; ++j) sum += (p[j] = std::exp(p[j] - mx));
                for (int j = 0; j < T; ++j) p[j] /= sum;
                for (int c = 0; c < D; ++c) {
                    double acc = 0;
                    for (int j = 0; j < T; ++j) acc += p[j] * V(j, c);
                    x.o[OD(i) + c] = (float) acc;
                }
                double delta = 0;
                for (int j = 0; j < T; ++j) {
                    double a = 0;
                    for (int c = 0; c < D; ++c) a += x.d[OD(i) + c] * V(j, c);
                    dp[j] = a;
                    delta += p[j] * a;
                }
                for (int j = 0; j < T; ++j) {
                    const double ds = p[j] * (dp[j] - delta);
                    if (p[j] == 0) continue;
                    for (int c = 0; c < D; ++c) {
                        x.dq[(((size_t) s * H + h) * T + i) * D + c] += scale * ds * K(j, c);
                        x.dk[(((size_t) s * Hk + hk) * T + j) * D + c] += scale * ds * Q(i, c);
                        x.dv[(((size_t) s * Hk + hk) * T + j) * D + c] += p[j] * x.d[OD(i) + c];
                    }
                }
            }
        }
    return x;
}

template <typename T> static T * up(const std::vector<T> & h) {
    T * p; CK(cudaMalloc(&p, h.size() * sizeof(T))); CK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)); return p;
}

struct Dev { cogumi_fa_back_args a; float * scratch; };

static Dev upload(const Host & x) {
    const Shape & sh = x.sh;
    const int D = sh.D, T = sh.Tq, H = sh.H, Hk = sh.Hkv, S = sh.S;
    cogumi_fa_back_args a{};
    a.q = up(x.q); a.q_nb1 = D; a.q_nb2 = (int64_t) D * T; a.q_nb3 = (int64_t) D * T * H;
    a.k = up(x.k); a.k_nb1 = D; a.k_nb2 = (int64_t) D * T; a.k_nb3 = (int64_t) D * T * Hk;
    a.v = up(x.v); a.v_nb1 = a.k_nb1; a.v_nb2 = a.k_nb2; a.v_nb3 = a.k_nb3;
    a.mask = up(x.mask); a.m_nb1 = T; a.m_nb3 = (int64_t) T * T; a.m_ne3 = S;
    a.o = up(x.o); a.o_nb1 = D; a.o_nb2 = (int64_t) D * H; a.o_nb3 = (int64_t) D * H * T;
    a.d = up(x.d); a.d_nb1 = a.o_nb1; a.d_nb2 = a.o_nb2; a.d_nb3 = a.o_nb3;
    CK(cudaMalloc(&a.dq, x.q.size() * 4)); CK(cudaMalloc(&a.dk, x.k.size() * 4)); CK(cudaMalloc(&a.dv, x.k.size() * 4));
    a.D = D; a.Tq = a.Tk = T; a.H = H; a.Hkv = Hk; a.S = S; a.scale = 1.0f / std::sqrt((float) D);
    float * scr; CK(cudaMalloc(&scr, cogumi_fa_back_scratch(a) * 4));
    return {a, scr};
}

static double rel_l2(const float * got, const std::vector<double> & want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) { num += (got[i] - want[i]) * (got[i] - want[i]); den += want[i] * want[i]; }
    return std::sqrt(num / (den > 0 ? den : 1));
}

// The accumulator layout fattn-back.cuh assumes (frag_row, frag_col): a fragment loaded from a matrix whose
// element (r, c) is r * 16 + c must hold frag_row * 16 + frag_col in each place.
__global__ void k_layout(int * bad) {
    __shared__ float m[256];
    for (int e = threadIdx.x; e < 256; e += 32) m[e] = (float) e;
    __syncwarp();
    cogumi_fab::acc_t f;
    nvcuda::wmma::load_matrix_sync(f, m, 16, nvcuda::wmma::mem_row_major);
    for (int t = 0; t < f.num_elements; ++t)
        if ((int) f.x[t] != cogumi_fab::frag_row(threadIdx.x, t) * 16 + cogumi_fab::frag_col(threadIdx.x, t)) atomicAdd(bad, 1);
}

int main() {
    int fails = 0;
    {
        int * bad; CK(cudaMallocManaged(&bad, 4)); *bad = 0;
        k_layout<<<1, 32>>>(bad); CK(cudaDeviceSynchronize());
        printf("accumulator layout: %s\n", *bad ? "DIFFERENT (the kernels are wrong on this GPU)" : "as assumed");
        fails += *bad != 0;
    }
    const bool time_only = getenv("TIME_ONLY") != nullptr;
    // the last: S * H * Tq odd (the BF16 copies' offset in the scratch must still be 16-byte aligned)
    const Shape checks[] = {{64, 256, 8, 2, 2, false}, {64, 200, 4, 4, 1, true}, {128, 192, 8, 2, 2, true}, {64, 130, 2, 1, 1, false},
                            {64, 131, 3, 1, 1, true}};
    for (const Shape & sh : checks) {
        if (time_only) break;
        Host x = make(sh, 7, true);
        Dev dv = upload(x);
        CK(cogumi_fa_back(dv.a, dv.scratch, 0));
        CK(cudaDeviceSynchronize());
        std::vector<float> dq(x.q.size()), dk(x.k.size()), dvv(x.k.size());
        CK(cudaMemcpy(dq.data(), dv.a.dq, dq.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(dk.data(), dv.a.dk, dk.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(dvv.data(), dv.a.dv, dvv.size() * 4, cudaMemcpyDeviceToHost));
        const double eq = rel_l2(dq.data(), x.dq), ek = rel_l2(dk.data(), x.dk), ev = rel_l2(dvv.data(), x.dv);
        const bool ok = eq < 2e-2 && ek < 2e-2 && ev < 2e-2;
        fails += !ok;
        printf("check D=%d T=%d H=%d Hkv=%d S=%d docs=%d: rel L2 dq %.2e dk %.2e dv %.2e %s\n", sh.D, sh.Tq, sh.H, sh.Hkv,
               sh.S, sh.docs, eq, ek, ev, ok ? "ok" : "FAIL");
    }
    const Shape times[] = {{64, 1024, 32, 8, 4, false}, {128, 2048, 32, 8, 1, false}, {64, 1024, 32, 8, 1, false}};
    for (const Shape & sh : times) {
        Host x = make(sh, 3, false);
        Dev dv = upload(x);
        cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
        for (int w = 0; w < (time_only ? 1 : 10); ++w) CK(cogumi_fa_back(dv.a, dv.scratch, 0));
        CK(cudaDeviceSynchronize());
        if (time_only) return 0;
        const int n = 50;
        cudaEventRecord(e0);
        for (int it = 0; it < n; ++it) CK(cogumi_fa_back(dv.a, dv.scratch, 0));
        cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
        float ms; cudaEventElapsedTime(&ms, e0, e1); ms /= n;
        // causal: 5 GEMMs (S twice, dP, dV, dK, dQ: 6) over half the T x T pairs, 2 D FLOP each
        const double flop = 6.0 * 2.0 * sh.D * (double) sh.Tq * sh.Tq / 2 * sh.H * sh.S;
        printf("time D=%d T=%d H=%d Hkv=%d S=%d: %.3f ms per layer (%.1f TFLOP/s useful)\n", sh.D, sh.Tq, sh.H, sh.Hkv,
               sh.S, ms, flop / ms / 1e9);
    }
    printf(fails ? "FAILED %d\n" : "all checks passed\n", fails);
    return fails != 0;
}
