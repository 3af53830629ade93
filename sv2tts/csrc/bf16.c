/* bfloat16 weights and activations (rounded to nearest even), float32 accumulation:
 * AVX512-BF16 vdpbf16ps, one 64-byte load = 16 rows x 2 columns. */
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx512bf16")))
#define MAXF 4
#define ESIZE 2
#define RUN_NAME engine_run_bf16
#define LINEAR_NAME engine_linear_bf16
#include "loop.h"

static TARGET void prepare(const float *v, int ldv, int n, int kp, int folds, Act *a) {
    a->kp = kp;
    for (int f = 0; f < folds; f++) {
        const float *row = v + (size_t)f * ldv;
        uint16_t *q = (uint16_t *)a->q + (size_t)f * kp;
        for (int k = 0; k < kp; k += 16) {
            __m512 x = _mm512_maskz_loadu_ps(lanes(n - k), row + k);  /* zeros past n */
            __m256bh y = _mm512_cvtneps_pbh(x);
            memcpy(q + k, &y, 32);
        }
    }
}

static inline __attribute__((always_inline)) TARGET void kernel(
        const int R, const int FG, const char *const *wb, const float *const *sb, const float *const *ub,
        const Act *a, int f0, float *out, int ldo) {
    (void)sb; (void)ub;
    const int kp = a->kp;
    const uint16_t *q = (const uint16_t *)a->q + (size_t)f0 * kp;
    __m512 acc[MAXR][MAXF];
    for (int b = 0; b < R; b++)
        for (int f = 0; f < FG; f++) acc[b][f] = _mm512_setzero_ps();
    for (int g = 0; g < kp / 2; g++) {
        __m512i w[MAXR];
        for (int b = 0; b < R; b++) w[b] = _mm512_loadu_si512((const void *)(wb[b] + 64 * (size_t)g));
        for (int f = 0; f < FG; f++) {
            int32_t x2;
            memcpy(&x2, q + (size_t)f * kp + 2 * g, sizeof x2);
            __m512i xv = _mm512_set1_epi32(x2);
            for (int b = 0; b < R; b++) acc[b][f] = _mm512_dpbf16_ps(acc[b][f], (__m512bh)w[b], (__m512bh)xv);
        }
    }
    for (int b = 0; b < R; b++)
        for (int f = 0; f < FG; f++) _mm512_storeu_ps(out + (size_t)f * ldo + 16 * b, acc[b][f]);
}
