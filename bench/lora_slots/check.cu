// Checks and times patch 0010's fused adapter-slot kernels (lora-slots.cuh) on their own: the result against a
// double-precision reference (F32 and F16 adapters, ranks and sizes that are not multiples of 4, tokens without
// an adapter, strided rows), patch 0014's folded add bit for bit, then one decode step's adapter work on an 8B-shaped model (32 layers x 7 targets,
// three rank-16 adapters, 8 and 32 tokens), captured in a CUDA graph as ggml runs it, against the unfused form
// the patch replaces (A x as one cuBLAS GEMM over all stacked rank rows, a mask, B as a GEMM, an add).
//   nvcc -O3 -std=c++17 -arch=sm_90 -I<patched llama.cpp>/ggml/src/ggml-cuda check.cu -lcublas -o check && ./check
// (patches/0010-lora-slots-fused-op.patch adds the header, 0014 the folded add; LORACHECK=1 bench/device.sh mixedlora runs this)
#include "lora-slots.cuh"

#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)
#define CB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d cublas %d\n", __FILE__, __LINE__, (int) s_); exit(1); } } while (0)

template <typename T> static T * dev(const std::vector<T> & h) {
    T * d; CK(cudaMalloc(&d, h.size() * sizeof(T) + 16));
    CK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

struct Case { int n_in, n_out, n; std::vector<int> ranks; bool f16; int pad; float p_none; };

// one check: random data, the kernels, the reference; returns the relative L2 error of dst
static double check(const Case & c, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    int R = 0;
    std::vector<int> offs;
    for (int r : c.ranks) { offs.push_back(R); R += r; }
    const int64_t xs = c.n_in + c.pad, ys = c.n_out + c.pad;  // row strides (pad: strided rows)
    std::vector<float> a((size_t) R * c.n_in), b((size_t) c.n_out * R), x((size_t) xs * c.n), y((size_t) ys * c.n);
    for (auto & f : a) f = nd(rng) * 0.05f;
    for (auto & f : b) f = nd(rng) * 0.05f;
    for (auto & f : x) f = nd(rng);
    for (auto & f : y) f = nd(rng);
    std::vector<int32_t> slots(3 * c.n);
    for (int t = 0; t < c.n; ++t) {
        const int s = (int) (rng() % c.ranks.size());
        const bool none = ud(rng) < c.p_none;
        const float scale = 0.5f + ud(rng);
        slots[3 * t] = offs[s];
        slots[3 * t + 1] = none ? 0 : c.ranks[s];
        memcpy(&slots[3 * t + 2], &scale, 4);
    }
    std::vector<half> ah(a.size()), bh(b.size());
    if (c.f16) {  // the reference sees the rounded values
        for (size_t i = 0; i < a.size(); ++i) { ah[i] = __float2half(a[i]); a[i] = __half2float(ah[i]); }
        for (size_t i = 0; i < b.size(); ++i) { bh[i] = __float2half(b[i]); b[i] = __half2float(bh[i]); }
    }
    cogumi_lora_slots_args p = {};
    p.f16 = c.f16;
    p.a = c.f16 ? (const void *) dev(ah) : (const void *) dev(a);
    p.b = c.f16 ? (const void *) dev(bh) : (const void *) dev(b);
    p.x = dev(x); p.x_nb1 = xs;
    p.y = dev(y); p.y_nb1 = ys;
    std::vector<float> out(y.size(), -7.0f);
    p.dst = dev(out); p.dst_nb1 = ys;
    p.slots = dev(slots);
    p.n_in = c.n_in; p.n_out = c.n_out; p.R = R; p.n = c.n;
    p.max_rank = 0;
    for (int r : c.ranks) p.max_rank = std::max(p.max_rank, r);
    CK(cudaMalloc(&p.h, cogumi_lora_slots_scratch(p) * sizeof(float)));
    CK(cogumi_lora_slots(p, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(out.data(), p.dst, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
    double num = 0, den = 0, pad_bad = 0;
    for (int t = 0; t < c.n; ++t) {
        const int off = slots[3 * t], rank = slots[3 * t + 1];
        float scale; memcpy(&scale, &slots[3 * t + 2], 4);
        std::vector<double> h(rank);
        for (int r = 0; r < rank; ++r) {
            double s = 0;
            for (int i = 0; i < c.n_in; ++i) s += (double) a[(size_t) (off + r) * c.n_in + i] * x[(size_t) t * xs + i];
            h[r] = scale * s;
        }
        for (int o = 0; o < c.n_out; ++o) {
            double d = 0;
            for (int r = 0; r < rank; ++r) d += (double) b[(size_t) o * R + off + r] * h[r];
            const double want = y[(size_t) t * ys + o] + d, got = out[(size_t) t * ys + o];
            num += (got - want) * (got - want); den += d * d + 1e-30;  // error relative to the delta
        }
        for (int o = c.n_out; o < ys; ++o) pad_bad += out[(size_t) t * ys + o] != -7.0f;  // padding untouched
    }
    if (pad_bad) { printf("  the kernels wrote %g padding values\n", pad_bad); return 1.0; }
    return std::sqrt(num / den);
}

// the unfused form's two elementwise kernels (ggml_mul by the mask, ggml_add)
__global__ void k_mul(float * t, const float * m, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) t[i] *= m[i]; }
__global__ void k_add(float * d, const float * y, const float * e, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) d[i] = y[i] + e[i]; }

struct Target { int n_in, n_out; };

// One decode step's adapter work over 32 layers x 7 targets, as a CUDA graph; returns ms per replay.
// GSHRINK, GBOTH: what grouping the targets that share an input would give (timing only: the kernels at the
// grouped shapes, launched one by one): one shrink for q/k/v (rank 48) and one for gate/up (rank 32), 4 shrinks
// and 7 expands per layer; GBOTH also one expand launch per group (q/k/v's 6,144 rows, gate/up's 28,672).
enum Mode { UNFUSED, FUSED, GSHRINK, GBOTH, MEMSET, MODES };
static const char * mode_name[] = {"unfused (cuBLAS)", "fused", "grouped shrinks", "grouped shrinks and expands",
                                   "one memset node per target (a graph node's floor)"};


static double time_step(int n, bool f16, Mode mode, cublasHandle_t cb) {
    const Target tg[7] = {{4096, 4096}, {4096, 1024}, {4096, 1024}, {4096, 4096}, {4096, 14336}, {4096, 14336}, {14336, 4096}};
    const int L = 32, rank = 16, R = 3 * rank;
    std::mt19937 rng(5);
    std::vector<int32_t> slots(3 * n);
    std::vector<float> mask((size_t) R * n, 0.0f);
    for (int t = 0; t < n; ++t) {
        const float scale = 1.0f;
        slots[3 * t] = (t % 3) * rank; slots[3 * t + 1] = rank; memcpy(&slots[3 * t + 2], &scale, 4);
        for (int r = 0; r < rank; ++r) mask[(size_t) t * R + (t % 3) * rank + r] = scale;
    }
    int32_t * d_slots = dev(slots);
    float * d_mask = dev(mask);
    std::vector<int32_t> gslots[3];  // per-token (off, rank) for group ranks 16, 32, 48 (R = 3 x rank)
    int32_t * d_gslots[3];
    for (int g = 0; g < 3; ++g) {
        const int gr = rank * (g + 1);
        gslots[g].resize(3 * n);
        for (int t = 0; t < n; ++t) { const float one = 1.0f; gslots[g][3 * t] = (t % 3) * gr; gslots[g][3 * t + 1] = gr; memcpy(&gslots[g][3 * t + 2], &one, 4); }
        d_gslots[g] = dev(gslots[g]);
    }
    struct Buf { void * a; void * b; float * x; float * y; float * d; float * h; float * t; float * e; unsigned * ctr; };
    std::vector<Buf> bufs;
    const size_t es = f16 ? 2 : 4;
    // the grouped shapes: per layer qkv (4096 -> 6144, rank 48), o (4096 -> 4096, 16), gate/up (4096 -> 28672, 32),
    // down (14336 -> 4096, 16)
    const Target gt[4] = {{4096, 6144}, {4096, 4096}, {4096, 28672}, {14336, 4096}};
    const int grk[4] = {48, 16, 32, 16};
    std::vector<Buf> gbufs;
    for (int l = 0; l < L && (mode == GSHRINK || mode == GBOTH); ++l)
        for (int k = 0; k < 4; ++k) {
            const Target & g = gt[k];
            const int GR = 3 * grk[k];
            Buf u = {};
            CK(cudaMalloc(&u.a, (size_t) GR * g.n_in * es)); CK(cudaMemset(u.a, 0, (size_t) GR * g.n_in * es));
            CK(cudaMalloc(&u.b, (size_t) R * g.n_out * es)); CK(cudaMemset(u.b, 0, (size_t) R * g.n_out * es));
            CK(cudaMalloc(&u.x, (size_t) n * g.n_in * 4)); CK(cudaMemset(u.x, 0, (size_t) n * g.n_in * 4));
            CK(cudaMalloc(&u.y, (size_t) n * g.n_out * 4)); CK(cudaMemset(u.y, 0, (size_t) n * g.n_out * 4));
            CK(cudaMalloc(&u.d, (size_t) n * g.n_out * 4));
            CK(cudaMalloc(&u.h, (size_t) n * GR * 4)); CK(cudaMemset(u.h, 0, (size_t) n * GR * 4));
            gbufs.push_back(u);
        }
    for (int l = 0; l < L; ++l)
        for (const Target & g : tg) {
            Buf u;
            CK(cudaMalloc(&u.a, (size_t) R * g.n_in * es)); CK(cudaMemset(u.a, 0, (size_t) R * g.n_in * es));
            CK(cudaMalloc(&u.b, (size_t) R * g.n_out * es)); CK(cudaMemset(u.b, 0, (size_t) R * g.n_out * es));
            CK(cudaMalloc(&u.x, (size_t) n * g.n_in * 4)); CK(cudaMemset(u.x, 0, (size_t) n * g.n_in * 4));
            CK(cudaMalloc(&u.y, (size_t) n * g.n_out * 4)); CK(cudaMemset(u.y, 0, (size_t) n * g.n_out * 4));
            CK(cudaMalloc(&u.d, (size_t) n * g.n_out * 4));
            CK(cudaMalloc(&u.h, (size_t) n * R * 4));
            CK(cudaMalloc(&u.ctr, 16));
            CK(cudaMalloc(&u.t, (size_t) n * R * 4));
            CK(cudaMalloc(&u.e, (size_t) n * g.n_out * 4));
            bufs.push_back(u);
        }
    cudaStream_t st; CK(cudaStreamCreate(&st));
    CB(cublasSetStream(cb, st));
    auto step = [&]() {
        if (mode == GSHRINK || mode == GBOTH) {
            int gi = 0, ti = 0;
            for (int l = 0; l < L; ++l) {
                for (int k = 0; k < 4; ++k) {  // the shrinks, one per shared input
                    Buf & u = gbufs[gi + k];
                    cogumi_lora_slots_args p = {};
                    p.a = u.a; p.f16 = f16; p.x = u.x; p.x_nb1 = gt[k].n_in; p.h = u.h; p.slots = d_gslots[grk[k] / rank - 1];
                    p.n_in = gt[k].n_in; p.R = 3 * grk[k]; p.n = n; p.max_rank = grk[k];
                    cogumi_lora_slots_shrink(p, st);
                }
                if (mode == GBOTH) {
                    for (int k = 0; k < 4; ++k) {  // one expand per group (timing shape: the group's rows together)
                        Buf & u = gbufs[gi + k];
                        cogumi_lora_slots_args p = {};
                        p.b = u.b; p.f16 = f16; p.y = u.y; p.y_nb1 = gt[k].n_out; p.dst = u.d; p.dst_nb1 = gt[k].n_out;
                        p.slots = d_slots; p.h = u.h; p.n_out = gt[k].n_out; p.R = R; p.n = n; p.max_rank = rank;
                        cogumi_lora_slots_expand(p, st);
                    }
                } else {
                    for (int k = 0; k < 7; ++k) {  // the seven expands
                        Buf & u = bufs[ti + k];
                        cogumi_lora_slots_args p = {};
                        p.b = u.b; p.f16 = f16; p.y = u.y; p.y_nb1 = tg[k].n_out; p.dst = u.d; p.dst_nb1 = tg[k].n_out;
                        p.slots = d_slots; p.h = u.h; p.n_out = tg[k].n_out; p.R = R; p.n = n; p.max_rank = rank;
                        cogumi_lora_slots_expand(p, st);
                    }
                }
                gi += 4; ti += 7;
            }
            return;
        }
        int i = 0;
        for (int l = 0; l < L; ++l)
            for (const Target & g : tg) {
                Buf & u = bufs[i++];
                if (mode != UNFUSED) {
                    cogumi_lora_slots_args p = {};
                    p.a = u.a; p.b = u.b; p.f16 = f16; p.x = u.x; p.x_nb1 = g.n_in; p.y = u.y; p.y_nb1 = g.n_out;
                    p.dst = u.d; p.dst_nb1 = g.n_out; p.slots = d_slots; p.h = u.h;
                    p.n_in = g.n_in; p.n_out = g.n_out; p.R = R; p.n = n; p.max_rank = rank;
                    if (mode == FUSED) CK(cogumi_lora_slots(p, st));
                    else CK(cudaMemsetAsync(u.ctr, 0, 8, st));
                } else {  // F32 adapters only: cuBLAS SGEMMs as ggml's F32 mul_mat falls back to
                    const float one = 1.0f, zero = 0.0f;
                    CB(cublasSgemm(cb, CUBLAS_OP_T, CUBLAS_OP_N, R, n, g.n_in, &one, (const float *) u.a, g.n_in, u.x, g.n_in, &zero, u.t, R));
                    k_mul<<<(n * R + 255) / 256, 256, 0, st>>>(u.t, d_mask, n * R);
                    CB(cublasSgemm(cb, CUBLAS_OP_T, CUBLAS_OP_N, g.n_out, n, R, &one, (const float *) u.b, R, u.t, R, &zero, u.e, g.n_out));
                    k_add<<<(n * g.n_out + 255) / 256, 256, 0, st>>>(u.d, u.y, u.e, n * g.n_out);
                }
            }
    };
    step();  // cuBLAS picks its kernels (and workspace) outside the capture
    CK(cudaStreamSynchronize(st));
    cudaGraph_t graph; cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    step();
    CK(cudaStreamEndCapture(st, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int w = 0; w < 3; ++w) CK(cudaGraphLaunch(exec, st));
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    const int reps = 20;
    CK(cudaEventRecord(e0, st));
    for (int r = 0; r < reps; ++r) CK(cudaGraphLaunch(exec, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
    CK(cudaGraphExecDestroy(exec)); CK(cudaGraphDestroy(graph)); CK(cudaStreamDestroy(st));
    for (Buf & u : gbufs) { cudaFree(u.a); cudaFree(u.b); cudaFree(u.x); cudaFree(u.y); cudaFree(u.d); cudaFree(u.h); }
    for (int g = 0; g < 3; ++g) cudaFree(d_gslots[g]);
    for (Buf & u : bufs) { cudaFree(u.a); cudaFree(u.b); cudaFree(u.x); cudaFree(u.y); cudaFree(u.d); cudaFree(u.h); cudaFree(u.t); cudaFree(u.e); cudaFree(u.ctr); }
    cudaFree(d_slots); cudaFree(d_mask);
    return ms / reps;
}

// Patch 0014's folded add: dst = (y + d) + z with strided rows, against the host's two float additions bit for bit;
// `into`: 0 a buffer of its own, 1 in place over z, 2 in place over y (the graph allocator may give the ADD's output
// either's memory, with the same rows)
static bool check_add_add(unsigned seed, int into) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int n_out = 1000, n = 7, ys = 1003, zs = into == 2 ? 1003 : 1001, ds = into == 0 ? 1005 : into == 1 ? zs : ys;
    std::vector<float> y((size_t) ys * n), d((size_t) n_out * n), z((size_t) zs * n), out((size_t) ds * n, -7.0f);
    for (auto & f : y) f = nd(rng);
    for (auto & f : d) f = nd(rng) * 1e-3f;
    for (auto & f : z) f = nd(rng);
    if (into == 1) out = z;
    if (into == 2) out = y;
    cogumi_lora_slots_args p = {};
    float * d_out = dev(out);
    p.y = into == 2 ? d_out : dev(y); p.y_nb1 = ys;
    p.dst = d_out; p.dst_nb1 = ds;
    p.n_out = n_out; p.n = n;
    cogumi_lora_slots_add_add(p, dev(d), into == 1 ? d_out : dev(z), zs, 0);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(out.data(), p.dst, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (int t = 0; t < n; ++t)
        for (int o = 0; o < ds; ++o) {
            const float pad = into == 0 ? -7.0f : into == 1 ? z[(size_t) t * zs + o] : y[(size_t) t * ys + o];
            const float want = o < n_out ? (y[(size_t) t * ys + o] + d[(size_t) t * n_out + o]) + z[(size_t) t * zs + o] : pad;
            bad += memcmp(&want, &out[(size_t) t * ds + o], 4) != 0;
        }
    const char * where[] = {"its own buffer", "in place over z", "in place over y"};
    printf("check folded add (y + d) + z, strided rows, %s: %zu values differ %s\n", where[into], bad, bad ? "FAIL" : "ok");
    return bad == 0;
}

int main() {
    const Case cases[] = {
        {4096, 1024, 32, {16, 16, 16}, false, 0, 0.0f},
        {4096, 4096, 8, {16, 16, 16}, true, 0, 0.0f},
        {100, 77, 13, {5, 3, 8}, false, 3, 0.3f},   // scalar paths, strided rows, tokens with no adapter
        {256, 300, 40, {12, 4, 32}, true, 4, 0.2f},
        {1024, 14336, 1, {128}, false, 0, 0.0f},    // the plan's rank, one token
    };
    bool ok = true;
    unsigned seed = 1;
    for (const Case & c : cases) {
        const double err = check(c, seed++);
        const bool good = err < 1e-5;
        ok &= good;
        printf("check n_in=%d n_out=%d n=%d ranks=%zu%s pad=%d: rel L2 of the delta %.2e %s\n", c.n_in, c.n_out, c.n,
               c.ranks.size(), c.f16 ? " f16" : "", c.pad, err, good ? "ok" : "FAIL");
    }
    for (int into = 0; into < 3; ++into) ok &= check_add_add(seed, into);
    cublasHandle_t cb; CB(cublasCreate(&cb));
    for (int n : {8, 32}) {
        printf("time 8B shape, 32 layers x 7 targets, 3 x rank 16, %d tokens, ms per step:", n);
        for (int m = UNFUSED; m < MODES; ++m) {
            printf(" %s %.3f", mode_name[m], time_step(n, false, (Mode) m, cb));
            if (m != UNFUSED) printf(" (F16 %.3f)", time_step(n, true, (Mode) m, cb));
            printf(";");
        }
        printf("\n");
    }
    printf(ok ? "all checks passed\n" : "CHECKS FAILED\n");
    return ok ? 0 : 1;
}
