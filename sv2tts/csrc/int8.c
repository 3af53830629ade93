/* int8 weights (per-row scale) and int8 activations (per fold row, asymmetric: v ~ s (q + c)),
 * int32 accumulation: AVX-512 VNNI vpdpbusd, one 64-byte load = 16 rows x 4 columns.
 * Weights are stored as w + 128 (unsigned operand); the offset is removed with the activation
 * row sums: ws[row] s[f] (sum_k wq[row][k] q[f][k] + c[f] sum_k wq[row][k]). */
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx512vnni")))
#define MAXF 4
#define ESIZE 1
#define RUN_NAME engine_run_int8
#define LINEAR_NAME engine_linear_int8
#include "loop.h"

static TARGET void prepare(const float *v, int ldv, int n, int kp, int folds, Act *a) {
    a->kp = kp;
    for (int f = 0; f < folds; f++) {
        const float *row = v + (size_t)f * ldv;
        int8_t *qr = (int8_t *)a->q + (size_t)f * kp;
        __m512 lo = _mm512_set1_ps(row[0]), hi = lo;
        for (int k = 0; k < n; k += 16) {
            __m512 x = _mm512_mask_loadu_ps(lo, lanes(n - k), row + k);  /* past n: row[0] again */
            lo = _mm512_min_ps(lo, x);
            hi = _mm512_max_ps(hi, x);
        }
        float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
        float s = (h - l) / 254.0f, c;
        if (s > 0.0f) c = (h + l) / (2.0f * s);
        else { s = 1.0f; c = h; }  /* a constant row: v = s * (0 + c) exactly */
        const __m512 inv = _mm512_set1_ps(1.0f / s), mc = _mm512_set1_ps(-c);
        const __m512i q_max = _mm512_set1_epi32(127), q_min = _mm512_set1_epi32(-127);
        __m512i acc = _mm512_setzero_si512();
        for (int k = 0; k < kp; k += 16) {
            __mmask16 mk = lanes(n - k);
            /* round(x / s - c) to nearest even (the default rounding mode), clamped to +-127 */
            __m512i q = _mm512_cvtps_epi32(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, row + k), inv, mc));
            q = _mm512_maskz_mov_epi32(mk, _mm512_max_epi32(_mm512_min_epi32(q, q_max), q_min));
            acc = _mm512_add_epi32(acc, q);
            _mm_storeu_si128((__m128i *)(qr + k), _mm512_cvtepi32_epi8(q));
        }
        a->s[f] = s;
        a->c[f] = c;
        a->sum[f] = 128 * _mm512_reduce_add_epi32(acc);
    }
}

static inline __attribute__((always_inline)) TARGET void kernel(
        const int R, const int FG, const char *const *wb, const float *const *sb, const float *const *ub,
        const Act *a, int f0, float *out, int ldo) {
    const int kp = a->kp;
    const int8_t *q = (const int8_t *)a->q + (size_t)f0 * kp;
    __m512i acc[MAXR][MAXF];
    for (int b = 0; b < R; b++)
        for (int f = 0; f < FG; f++) acc[b][f] = _mm512_setzero_si512();
    for (int g = 0; g < kp / 4; g++) {
        __m512i w[MAXR];
        for (int b = 0; b < R; b++) w[b] = _mm512_loadu_si512((const void *)(wb[b] + 64 * (size_t)g));
        for (int f = 0; f < FG; f++) {
            int32_t x4;
            memcpy(&x4, q + (size_t)f * kp + 4 * g, sizeof x4);
            __m512i xv = _mm512_set1_epi32(x4);
            for (int b = 0; b < R; b++) acc[b][f] = _mm512_dpbusd_epi32(acc[b][f], w[b], xv);
        }
    }
    for (int b = 0; b < R; b++) {
        __m512 ws = _mm512_loadu_ps(sb[b]), us = _mm512_loadu_ps(ub[b]);
        for (int f = 0; f < FG; f++) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[b][f], _mm512_set1_epi32(a->sum[f0 + f])));
            v = _mm512_fmadd_ps(_mm512_set1_ps(a->c[f0 + f]), us, v);
            _mm512_storeu_ps(out + (size_t)f * ldo + 16 * b,
                             _mm512_mul_ps(v, _mm512_mul_ps(ws, _mm512_set1_ps(a->s[f0 + f]))));
        }
    }
}
