/* WaveRNN generation loop with int8 weights (AVX-512 VNNI), for sv2tts's precision="int8".
 *
 * Built on first use by native.py (cc -O3 -march=native) and called through
 * ctypes; the build fails (and sv2tts uses its TorchScript loop) on CPUs without AVX-512 VNNI.
 *
 * One call runs one chunk of steps of FastGenerator's loop (fast.py) with the same math:
 * the sample-independent terms pi, p1, q2, q3, q4 come precomputed (float32, time-major
 * (steps, folds, n)); each step runs GRU 1 (hidden part), GRU 2, fc1-fc3 and inverse-CDF
 * sampling for every fold. Matrix-vector products use int8 weights (per output row scale)
 * and int8 activations (per fold row, asymmetric: v ~ s (q + c)), int32 accumulation, float32
 * everything else. Weights come packed by native.py as uint8 (w + 128) in [N/16][K/4][16][4] blocks, so
 * one 64-byte load holds 16 rows x 4 columns and vpdpbusd multiplies it with 4 broadcast
 * activation bytes; the +128 offset is removed with the activation row sums.
 *
 * Threads: one OpenMP parallel region per call (built with -fopenmp; in a process that has
 * loaded torch this is torch's own libgomp, so the loop runs on torch's thread pool instead of
 * competing with it); the work of each phase is split by output rows (GRU: by hidden unit, all
 * three gates), phases separated by barriers (6 per step).
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__)
#error "sv2tts int8 loop needs AVX-512 VNNI"
#endif

#define MAXR 4  /* row blocks of 16 per kernel call */
#define MAXF 6  /* folds per kernel call */

typedef struct {
    const uint8_t *w;    /* packed (w + 128), [np / 16][kp / 4][16][4]; np, kp: multiples of 16 */
    const float *scale;  /* (np,) per-row weight scale, 0 on padding rows */
    const float *wsum;   /* (np,) per-row sum of the int8 weights */
} QMat;

typedef struct {
    int32_t r, fc, n_cls;      /* GRU width, fc width, classes */
    int32_t rp, fcp, ncp;      /* each padded up to a multiple of 16 */
    QMat hh1[3], ih2[3], hh2[3], fc1, fc2, fc3;  /* GRU matrices split per gate (r, z, n) */
    const float *u1;           /* (3r) W_ih1 @ w_x */
    const float *w_x;          /* (r) input-layer column of the fed-back sample */
    const float *b_hh1, *b_hh2;  /* (3r) */
    const float *b_fc3;        /* (n_cls) */
    const float *lut;          /* (n_cls) label -> fed-back sample */
} Net;

typedef struct {
    const Net *net;
    int32_t n_folds, n_steps, n_threads;
    const float *pi, *p1, *q2, *q3, *q4;  /* (steps, F, r / 3r / 3r / fc / fc) */
    const float *u;            /* (steps, F) uniforms */
    const int64_t *forced;     /* (steps, F) labels to feed back instead of sampling, or NULL */
    float *x, *h1, *h2;        /* state in/out: (F), (F, r), (F, r) */
    int64_t *labels;           /* (steps, F) out */
    float *logits;             /* (steps, F, n_cls) out, or NULL */
} Job;

/* ------------------------------------------------------------------ math */
static inline float fexp(float x) {
    /* e^x for float32, |rel err| < 2e-7 on [-87, 87] (clamped): 2^n * poly(r), r = x - n ln2 */
    x = fminf(fmaxf(x, -87.0f), 87.0f);
    float n = nearbyintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693145751953125f, x);
    r = fmaf(n, -1.428606765330187e-06f, r);
    float p = 1.98412698e-4f;
    p = fmaf(p, r, 1.38888889e-3f);
    p = fmaf(p, r, 8.33333333e-3f);
    p = fmaf(p, r, 4.16666667e-2f);
    p = fmaf(p, r, 1.66666667e-1f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

static inline float fsigmoid(float x) { return 1.0f / (1.0f + fexp(-x)); }
static inline float ftanh(float x) { return 2.0f / (1.0f + fexp(-2.0f * x)) - 1.0f; }

/* Activations quantized per fold row, asymmetric: v ~ s (q + c) with q in [-127, 127]. */
typedef struct {
    int8_t *q;     /* (F, kp), zero-padded */
    float *s, *c;  /* (F): scale, centre */
    int32_t *sum;  /* (F): 128 * sum(q), removes the +128 of the packed weights */
    int kp;
} QAct;

static void quantize(const float *v, int ldv, int n, int kp, int folds, QAct *a) {
    a->kp = kp;
    for (int f = 0; f < folds; f++) {
        const float *row = v + (size_t)f * ldv;
        int8_t *qr = a->q + (size_t)f * kp;
        float lo = row[0], hi = row[0];
        for (int k = 1; k < n; k++) { lo = fminf(lo, row[k]); hi = fmaxf(hi, row[k]); }
        float s = (hi - lo) / 254.0f, c;
        if (s > 0.0f) c = (hi + lo) / (2.0f * s);
        else { s = 1.0f; c = hi; }  /* a constant row: v = s * (0 + c) exactly */
        float inv = 1.0f / s;
        int32_t acc = 0;
        for (int k = 0; k < n; k++) {
            int32_t qk = (int32_t)nearbyintf(fmaf(row[k], inv, -c));
            qk = qk > 127 ? 127 : (qk < -127 ? -127 : qk);
            qr[k] = (int8_t)qk;
            acc += qk;
        }
        for (int k = n; k < kp; k++) qr[k] = 0;
        a->s[f] = s;
        a->c[f] = c;
        a->sum[f] = 128 * acc;
    }
}

/* out[f][16 b + l] = sum_k W[row][k] v[f0 + f][k] for the 16 rows l of R row blocks (block b:
 * packed weights wb[b], row scales sb[b], row sums ub[b]) and FG folds:
 * ws[row] * s[f] * (sum_k wq[row][k] q[f][k] + c[f] * sum_k wq[row][k]). */
static inline __attribute__((always_inline)) void kernel(
        const int R, const int FG, const uint8_t *const *wb, const float *const *sb,
        const float *const *ub, const QAct *a, int f0, float *out, int ldo) {
    const int kp = a->kp;
    const int8_t *q = a->q + (size_t)f0 * kp;
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
            _mm512_storeu_ps(out + (size_t)f * ldo + 16 * b, _mm512_mul_ps(v, _mm512_mul_ps(ws, _mm512_set1_ps(a->s[f0 + f]))));
        }
    }
}

#define KCASE(RR, FF) case FF: kernel(RR, FF, wb, sb, ub, a, f0, out, ldo); break;
#define KSWITCH(RR) switch (FG) { KCASE(RR, 1) KCASE(RR, 2) KCASE(RR, 3) KCASE(RR, 4) KCASE(RR, 5) KCASE(RR, 6) }

static void matvec(int R, int FG, const uint8_t *const *wb, const float *const *sb, const float *const *ub,
                   const QAct *a, int f0, float *out, int ldo) {
    switch (R) {
        case 1: KSWITCH(1) break;
        case 2: KSWITCH(2) break;
        case 3: KSWITCH(3) break;
        case 4: KSWITCH(4) break;
    }
}

/* Rows [16 b0, 16 b1) of one matrix for all folds -> out (F, ldo) at column 16 b0 (dequantized). */
static void matvec_rows(const QMat *m, int b0, int b1, int folds, const QAct *a, float *out, int ldo) {
    size_t bstride = (size_t)a->kp * 16;
    for (int b = b0; b < b1; b += MAXR) {
        int R = b1 - b < MAXR ? b1 - b : MAXR;
        const uint8_t *wb[MAXR];
        const float *sb[MAXR], *ub[MAXR];
        for (int i = 0; i < R; i++) {
            wb[i] = m->w + (b + i) * bstride;
            sb[i] = m->scale + 16 * (b + i);
            ub[i] = m->wsum + 16 * (b + i);
        }
        for (int f = 0; f < folds; f += MAXF)
            matvec(R, folds - f < MAXF ? folds - f : MAXF, wb, sb, ub, a, f, out + (size_t)f * ldo + 16 * b, ldo);
    }
}

/* The three gates of a GRU matrix for hidden-unit block b -> out (F, 48): r, z, n. */
static void matvec_gates(const QMat *g, int b, int folds, const QAct *a, float *out) {
    size_t bstride = (size_t)a->kp * 16;
    const uint8_t *wb[3] = {g[0].w + b * bstride, g[1].w + b * bstride, g[2].w + b * bstride};
    const float *sb[3] = {g[0].scale + 16 * b, g[1].scale + 16 * b, g[2].scale + 16 * b};
    const float *ub[3] = {g[0].wsum + 16 * b, g[1].wsum + 16 * b, g[2].wsum + 16 * b};
    for (int f = 0; f < folds; f += MAXF)
        matvec(3, folds - f < MAXF ? folds - f : MAXF, wb, sb, ub, a, f, out + (size_t)f * 48, 48);
}

/* A dense layer's rows [16 b0, 16 b1) for all folds: out (F, ldo) = W in + add, ReLU if relu.
 * in: (F, ldin) with n_in values per row (quantized to kp columns); add: (F, ld_add), ld_add = 0
 * for a bias shared by the folds. */
static void dense(const QMat *w, const float *in, int ldin, int n_in, int kp, int b0, int b1, int folds,
                  QAct *a, const float *add, int ld_add, int relu, int n_out, float *out, int ldo) {
    quantize(in, ldin, n_in, kp, folds, a);
    matvec_rows(w, b0, b1, folds, a, out, ldo);
    int j1 = 16 * b1 < n_out ? 16 * b1 : n_out;
    for (int f = 0; f < folds; f++) {
        float *o = out + (size_t)f * ldo;
        const float *ad = add + (size_t)f * ld_add;
        for (int j = 16 * b0; j < j1; j++) o[j] = relu ? fmaxf(o[j] + ad[j], 0.0f) : o[j] + ad[j];
    }
}

/* ------------------------------------------------------------------ the loop */
typedef struct {
    const Job *job;
    float *h1next, *gh2, *y1, *y2, *logits;  /* shared scratch */
    char *scratch;                           /* per-thread scratch, per_thread bytes each */
    size_t per_thread;
} Shared;

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline void split(int n, int tid, int nt, int *lo, int *hi) {
    *lo = (int)((long)n * tid / nt);
    *hi = (int)((long)n * (tid + 1) / nt);
}

/* One thread's part of the loop: thread tid of T, inside the parallel region. */
static void run(const Shared *sh, int tid, int T) {
    const Job *jb = sh->job;
    const Net *m = jb->net;
    const int F = jb->n_folds, r = m->r, fc = m->fc, nc = m->n_cls;
    const int rp = m->rp, fcp = m->fcp, ncp = m->ncp;
    int kmax = rp > fcp ? rp : fcp;
    char *mine = sh->scratch + tid * sh->per_thread;
    int8_t *q = (int8_t *)mine;
    float *x1 = (float *)(mine += up64((size_t)F * kmax)), *v = (float *)(mine += up64(4 * (size_t)F * rp));
    float *tmp = (float *)(mine += up64(4 * (size_t)F * rp)), *xs = (float *)(mine += up64(4 * (size_t)F * 48));
    float *xc = (float *)(mine += up64(4 * (size_t)F));
    int32_t *xsum = (int32_t *)(mine += up64(4 * (size_t)F));
    QAct act = {q, xs, xc, xsum, 0};
    int ub0, ub1, f0, f1, c0, c1, o0, o1;
    split(rp / 16, tid, T, &ub0, &ub1);   /* hidden-unit blocks */
    split(fcp / 16, tid, T, &c0, &c1);  /* fc row blocks */
    split(ncp / 16, tid, T, &o0, &o1);  /* output row blocks */
    split(F, tid, T, &f0, &f1);         /* folds (sampling) */
    float *h1 = jb->h1, *h1n = sh->h1next, *h2 = jb->h2, *x = jb->x;
    for (int t = 0; t < jb->n_steps; t++) {
        const float *pi = jb->pi + (size_t)t * F * r, *p1 = jb->p1 + (size_t)t * F * 3 * r;
        const float *q2 = jb->q2 + (size_t)t * F * 3 * r, *q3 = jb->q3 + (size_t)t * F * fc;
        const float *q4 = jb->q4 + (size_t)t * F * fc;
        /* phase 1: GRU 1 for my hidden units; W_hh2 h2 for my units */
        quantize(h1, r, r, rp, F, &act);
        for (int b = ub0; b < ub1; b++) {
            int lmax = r - 16 * b < 16 ? r - 16 * b : 16;
            matvec_gates(m->hh1, b, F, &act, tmp);
            for (int f = 0; f < F; f++) {
                const float *restrict gh = tmp + 48 * f, *restrict gi = p1 + (size_t)f * 3 * r + 16 * b;
                const float *restrict w1 = m->u1 + 16 * b, *restrict bh = m->b_hh1 + 16 * b;
                const float *restrict hp = h1 + (size_t)f * r + 16 * b;
                float *restrict hn = h1n + (size_t)f * r + 16 * b;
                const float xf = x[f];
                for (int l = 0; l < lmax; l++) {
                    float rg = fsigmoid(gi[l] + xf * w1[l] + gh[l] + bh[l]);
                    float zg = fsigmoid(gi[r + l] + xf * w1[r + l] + gh[16 + l] + bh[r + l]);
                    float n = ftanh(gi[2 * r + l] + xf * w1[2 * r + l] + rg * (gh[32 + l] + bh[2 * r + l]));
                    hn[l] = n + zg * (hp[l] - n);
                }
            }
        }
        quantize(h2, r, r, rp, F, &act);
        for (int b = ub0; b < ub1; b++) {
            matvec_gates(m->hh2, b, F, &act, tmp);
            int lmax = r - 16 * b < 16 ? r - 16 * b : 16;
            for (int f = 0; f < F; f++)
                for (int g = 0; g < 3; g++)
                    for (int l = 0; l < lmax; l++) {
                        int j = g * r + 16 * b + l;
                        sh->gh2[(size_t)f * 3 * r + j] = tmp[48 * f + 16 * g + l] + m->b_hh2[j];
                    }
        }
        #pragma omp barrier
        /* phase 2: x1 = I(...) + h1' (every thread, whole); GRU 2 for my hidden units */
        for (int f = 0; f < F; f++)
            for (int j = 0; j < r; j++)
                x1[(size_t)f * rp + j] = pi[(size_t)f * r + j] + x[f] * m->w_x[j] + h1n[(size_t)f * r + j];
        quantize(x1, rp, r, rp, F, &act);
        for (int b = ub0; b < ub1; b++) {
            int lmax = r - 16 * b < 16 ? r - 16 * b : 16;
            matvec_gates(m->ih2, b, F, &act, tmp);
            for (int f = 0; f < F; f++) {
                const float *gi = tmp + 48 * f, *gh = sh->gh2 + (size_t)f * 3 * r, *qq = q2 + (size_t)f * 3 * r;
                for (int l = 0; l < lmax; l++) {
                    int j = 16 * b + l;
                    float rg = fsigmoid(gi[l] + qq[j] + gh[j]);
                    float zg = fsigmoid(gi[16 + l] + qq[r + j] + gh[r + j]);
                    float n = ftanh(gi[32 + l] + qq[2 * r + j] + rg * gh[2 * r + j]);
                    float hp = h2[(size_t)f * r + j];
                    h2[(size_t)f * r + j] = n + zg * (hp - n);
                }
            }
        }
        #pragma omp barrier
        /* phase 3: fc1(x1 + h2') for my rows */
        for (int f = 0; f < F; f++)
            for (int j = 0; j < r; j++) v[(size_t)f * rp + j] = x1[(size_t)f * rp + j] + h2[(size_t)f * r + j];
        dense(&m->fc1, v, rp, r, rp, c0, c1, F, &act, q3, fc, 1, fc, sh->y1, fcp);
        #pragma omp barrier
        /* phase 4: fc2 for my rows */
        dense(&m->fc2, sh->y1, fcp, fc, fcp, c0, c1, F, &act, q4, fc, 1, fc, sh->y2, fcp);
        #pragma omp barrier
        /* phase 5: fc3 (logits) for my rows */
        dense(&m->fc3, sh->y2, fcp, fc, fcp, o0, o1, F, &act, m->b_fc3, 0, 0, nc, sh->logits, ncp);
        #pragma omp barrier
        /* phase 6: sample my folds (inverse CDF), or feed back the forced labels */
        for (int f = f0; f < f1; f++) {
            float *lg = sh->logits + (size_t)f * ncp;
            if (jb->logits) memcpy(jb->logits + ((size_t)t * F + f) * nc, lg, sizeof(float) * nc);
            int64_t k;
            if (jb->forced) {
                k = jb->forced[(size_t)t * F + f];
            } else {
                float mx = lg[0], total = 0.0f;
                for (int j = 1; j < nc; j++) mx = fmaxf(mx, lg[j]);
                for (int j = 0; j < nc; j++) { lg[j] = fexp(lg[j] - mx); total += lg[j]; }
                float target = jb->u[(size_t)t * F + f] * total, c = 0.0f;
                for (k = 0; k < nc - 1; k++) {
                    c += lg[k];
                    if (c > target) break;
                }
            }
            jb->labels[(size_t)t * F + f] = k;
            x[f] = m->lut[k];
        }
        #pragma omp barrier
        float *swap = h1; h1 = h1n; h1n = swap;
    }
    if (tid == 0 && h1 != jb->h1) memcpy(jb->h1, h1, sizeof(float) * F * r);
}

/* Run job->n_steps steps on up to job->n_threads threads; returns 0, or -1 without memory. */
int sv2tts_wavernn_int8(const Job *job) {
    const Net *m = job->net;
    const size_t F = job->n_folds, kmax = m->rp > m->fcp ? m->rp : m->fcp;
    const int T = job->n_threads < 1 ? 1 : job->n_threads;
    Shared sh = {job, malloc(sizeof(float) * F * m->r), malloc(sizeof(float) * F * 3 * m->r),
                 malloc(sizeof(float) * F * m->fcp), malloc(sizeof(float) * F * m->fcp),
                 malloc(sizeof(float) * F * m->ncp), NULL,
                 up64(F * kmax) + 2 * up64(4 * F * m->rp) + up64(4 * F * 48) + 3 * up64(4 * F)};
    sh.scratch = aligned_alloc(64, T * sh.per_thread);
    int rc = (!sh.h1next || !sh.gh2 || !sh.y1 || !sh.y2 || !sh.logits || !sh.scratch) ? -1 : 0;
    if (rc == 0) {
        #pragma omp parallel num_threads(T)
        run(&sh, omp_get_thread_num(), omp_get_num_threads());
    }
    free(sh.h1next); free(sh.gh2); free(sh.y1); free(sh.y2); free(sh.logits); free(sh.scratch);
    return rc;
}
