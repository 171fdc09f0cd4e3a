// The double-precision reference the CPU product tests (patches 0011, 0017, 0019) compare ggml_mul_mat against.
#pragma once

#include <ggml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cogumi::test {

// t's element at (i0, i1, i2, i3) through its strides (views and permutes too), F32 or BF16, as a double.
inline double mul_mat_element(const ggml_tensor* t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
  const char* p = (const char*)t->data + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
  return t->type == GGML_TYPE_BF16 ? double(ggml_bf16_to_fp32(*(const ggml_bf16_t*)p)) : double(*(const float*)p);
}

// The largest |d - a^T b| over d = ggml_mul_mat(a, b), each relative to its output's sum of |products|; a broadcast
// over b's dims 2 and 3 as ggml does. b_as_bf16: b's values rounded to BF16 first, as a BF16 a's product reads them.
inline double mul_mat_worst_error(const ggml_tensor* a, const ggml_tensor* b, const ggml_tensor* d, bool b_as_bf16 = false) {
  double worst = 0;
  for (int64_t i3 = 0; i3 < b->ne[3]; ++i3)
    for (int64_t i2 = 0; i2 < b->ne[2]; ++i2)
      for (int64_t j = 0; j < b->ne[1]; ++j)
        for (int64_t i = 0; i < a->ne[1]; ++i) {
          double want = 0, mag = 0;
          for (int64_t k = 0; k < a->ne[0]; ++k) {
            double bv = mul_mat_element(b, k, j, i2, i3);
            if (b_as_bf16) bv = ggml_bf16_to_fp32(ggml_fp32_to_bf16(float(bv)));
            const double p = mul_mat_element(a, k, i, i2 / (b->ne[2] / a->ne[2]), i3 / (b->ne[3] / a->ne[3])) * bv;
            want += p, mag += std::fabs(p);
          }
          worst = std::max(worst, std::fabs(mul_mat_element(d, i, j, i2, i3) - want) / std::max(mag, 1e-30));
        }
  return worst;
}

}  // namespace cogumi::test
