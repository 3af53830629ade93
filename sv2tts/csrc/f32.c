/* float32 weights and activations: AVX-512F FMA, one 64-byte load = 16 rows x 1 column. */
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define MAXF 6
#define ESIZE 4
#define RUN_NAME engine_run_f32
#define LINEAR_NAME engine_linear_f32
#include "loop.h"

static TARGET void prepare(const float *v, int ldv, int n, int kp, int folds, Act *a) {
    a->kp = kp;
    for (int f = 0; f < folds; f++) {
        float *q = (float *)a->q + (size_t)f * kp;
        memcpy(q, v + (size_t)f * ldv, sizeof(float) * n);
        memset(q + n, 0, sizeof(float) * (kp - n));
    }
}

static inline __attribute__((always_inline)) TARGET void kernel(
        const int R, const int FG, const char *const *wb, const float *const *sb, const float *const *ub,
        const Act *a, int f0, float *out, int ldo) {
    (void)sb; (void)ub;
    const int kp = a->kp;
    const float *q = (const float *)a->q + (size_t)f0 * kp;
    __m512 acc[MAXR][MAXF];
    for (int b = 0; b < R; b++)
        for (int f = 0; f < FG; f++) acc[b][f] = _mm512_setzero_ps();
    for (int k = 0; k < kp; k++) {
        __m512 w[MAXR];
        for (int b = 0; b < R; b++) w[b] = _mm512_loadu_ps((const float *)wb[b] + 16 * (size_t)k);
        for (int f = 0; f < FG; f++) {
            __m512 xv = _mm512_set1_ps(q[(size_t)f * kp + k]);
            for (int b = 0; b < R; b++) acc[b][f] = _mm512_fmadd_ps(w[b], xv, acc[b][f]);
        }
    }
    for (int b = 0; b < R; b++)
        for (int f = 0; f < FG; f++) _mm512_storeu_ps(out + (size_t)f * ldo + 16 * b, acc[b][f]);
}
