#!/usr/bin/env python3
"""Times the cuBLAS SGEMM calls ggml's CUDA backend makes for the LoRA trainer's thin matmuls.

ggml runs an F32 x F32 ggml_mul_mat(src0 [K, M], src1 [K, N]) as cublasSgemm(T, N, M, N, K) and a
ggml_out_prod as cublasSgemm(N, T or N, ...), on a handle in TF32 tensor-op math with a 32 MiB
workspace (ggml-cuda/common.cuh). This calls the same function with the same arguments through
ctypes (PyTorch only allocates and times), so a shape that cuBLAS's heuristics run slowly shows here
the way it shows in a training step's profile: the rank-48 LoRA A (q, k and v grouped) forward
matmul took 0.73 ms per profiled node for 0.8 GFLOP on the H200 where the rank-16 ones took 0.044 ms (this
script then timed the GEMM alone at 18 us: the node's time was not cuBLAS's). Nsight Compute (device.sh NCU=1) later
timed it inside a 1B step at 164 us with cold caches, 2.6 ms of a 146-ms step: the per-node profile had misled.

Usage (the device machine): python3 bench/cublas_shapes.py   -> a Markdown table on stdout
"""
import ctypes
import glob
import os

import torch

OP_N, OP_T = 0, 1
TF32_TENSOR_OP_MATH = 3


def load_cublas():
    cands = []
    for d in [os.path.dirname(torch.__file__)] + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]:
        cands += glob.glob(os.path.join(d, "..", "nvidia", "cublas", "lib", "libcublas.so*"))
        cands += glob.glob(os.path.join(d, "libcublas.so*"))
    cands += glob.glob("/usr/local/cuda*/lib64/libcublas.so*")
    for c in cands:
        try:
            return ctypes.CDLL(c), c
        except OSError:
            pass
    raise SystemExit("cublas_shapes.py: no libcublas.so found (looked next to torch and in /usr/local/cuda*)")


def main():
    lib, path = load_cublas()
    h = ctypes.c_void_p()
    assert lib.cublasCreate_v2(ctypes.byref(h)) == 0
    assert lib.cublasSetMathMode(h, TF32_TENSOR_OP_MATH) == 0
    ws = torch.empty(32 << 20, dtype=torch.uint8, device="cuda")
    assert lib.cublasSetWorkspace_v2(h, ctypes.c_void_p(ws.data_ptr()), ctypes.c_size_t(ws.numel())) == 0
    stream = torch.cuda.current_stream().cuda_stream
    assert lib.cublasSetStream_v2(h, ctypes.c_void_p(stream)) == 0
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)

    def sgemm_us(ta, tb, m, n, k, reps=50):
        a = torch.randn(m * k, device="cuda")
        b = torch.randn(k * n, device="cuda")
        c = torch.empty(m * n, device="cuda")
        lda = k if ta == OP_T else m
        ldb = n if tb == OP_T else k
        args = (h, ta, tb, m, n, k, ctypes.byref(one), ctypes.c_void_p(a.data_ptr()), lda,
                ctypes.c_void_p(b.data_ptr()), ldb, ctypes.byref(zero), ctypes.c_void_p(c.data_ptr()), m)
        for _ in range(5):
            assert lib.cublasSgemm_v2(*args) == 0
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(reps):
            lib.cublasSgemm_v2(*args)
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) * 1000.0 / reps

    print(f"cuBLAS: {path}, TF32 tensor-op math, {torch.cuda.get_device_name()}")
    print("| what | op | m | n | k | us | TFLOP/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    # forward LoRA A x (ggml_mul_mat(A [K, r], x [K, T]) = Sgemm(T, N, r, T, K)), and swapped (x as src0)
    for k in (2048, 4096, 14336):
        for r in (16, 32, 48, 64, 96):
            rows.append((f"mul_mat A x, rank {r}", OP_T, OP_N, r, 2048, k))
        rows.append(("mul_mat x A (swapped), rank 48", OP_T, OP_N, 2048, 48, k))
    # 1B at 4 x 1024: 4096 tokens of 2048 features (the profile's slow q/k/v group node)
    for r in (16, 32, 48):
        rows.append((f"mul_mat A x, rank {r}, 4096 tokens", OP_T, OP_N, r, 4096, 2048))
    # out_prod gradients: dA = out_prod(x [K, T], g [r, T]) = Sgemm(N, T, K, r, T);
    # dB = out_prod(Ax [r, T], g [M, T]) = Sgemm(N, T, r, M, T); dx = out_prod(A [K, r], g^T) = Sgemm(N, N, K, T, r)
    for k in (2048, 4096, 14336):
        for r in (16, 48):
            rows.append((f"out_prod dA, rank {r}", OP_N, OP_T, k, r, 2048))
            rows.append((f"out_prod dB, rank {r}", OP_N, OP_T, r, k, 2048))
            rows.append((f"out_prod dx, rank {r}", OP_N, OP_N, k, 2048, r))
    # the transposed-copy path's dA: ggml_mul_mat(x^T [T, K], g^T [T, r]) = Sgemm(T, N, K, r, T)
    for k in (2048, 4096, 14336):
        rows.append(("mul_mat dA (copies), rank 48", OP_T, OP_N, k, 48, 2048))
    for what, ta, tb, m, n, k in rows:
        us = sgemm_us(ta, tb, m, n, k)
        print(f"| {what} | {'NT'[ta]}{'NT'[tb]} | {m} | {n} | {k} | {us:.1f} | {2.0 * m * n * k / us / 1e6:.2f} |")


if __name__ == "__main__":
    main()
