/* float32 weights and activations: AVX-512F FMA, one 64-byte load = 16 rows x 1 column. */
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define ESIZE 4
#define RUN_NAME engine_run_f32
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

/* y (M, ldy) = x (M, n_in) W^T + bias for the row blocks of thread tid of T (no barrier):
 * a small-batch float32 product for other callers (the synthesizer's decoder). y's columns are
 * padded to 16 (bias too); scratch: M * kp floats of this thread's own. */
TARGET void engine_linear_f32(const Mat *m, int n_in, int kp, int np, const float *x, int M,
                              const float *bias, float *y, float *scratch, int tid, int T) {
    int b0, b1;
    split(np / 16, tid, T, &b0, &b1);
    if (b0 == b1) return;
    Act act = {scratch, NULL, NULL, NULL, 0};
    prepare(x, n_in, n_in, kp, M, &act);
    matvec_rows(m, b0, b1, M, &act, y, np);
    for (int f = 0; f < M; f++)
        for (int b = b0; b < b1; b++) {
            float *o = y + (size_t)f * np + 16 * b;
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), _mm512_loadu_ps(bias + 16 * b)));
        }
}
