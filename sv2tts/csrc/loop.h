/* The generation loop, generic over the weight precision. Included once by each of f32.c,
 * bf16.c and int8.c after they define:
 *   TARGET            function attribute selecting the instruction set of that file
 *   ESIZE             bytes per packed weight element (4, 2, 1)
 *   RUN_NAME          name of the exported generation loop (engine.h)
 *   LINEAR_NAME       name of the exported small-batch product (engine.h)
 *   prepare(v, ldv, n, kp, folds, a)   activations (folds, n) float -> a->q in the kernel's format
 *   kernel(R, FG, wb, sb, ub, a, f0, out, ldo)   16 R output rows x FG folds (always inline)
 *   MAXF              folds per kernel call, 4 or 6
 * Everything here is static: each file gets its own copy compiled for its instruction set.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine.h"

#define MAXR 4  /* row blocks of 16 per kernel call */
/* MAXF, folds per kernel call (4 or 6), is set by the including file: MAXR * MAXF accumulators
 * + MAXR weights fit 32 registers; measured on AVX-512, float32 runs best with 6, int8 and bf16
 * with 4 (1.2-1.4x faster per fold than 6 at 6-16 folds). */
#if MAXF != 4 && MAXF != 6
#error "MAXF must be 4 or 6"
#endif

/* Activations prepared for the kernel: (F, kp) values (float, bf16 or int8), zero-padded;
 * int8 also has per-row scale s, centre c and 128 * sum(q) (v ~ s (q + c)). */
typedef struct {
    void *q;
    float *s, *c;
    int32_t *sum;
    int kp;
} Act;

/* Defined by the including file, after this header. */
static TARGET void prepare(const float *v, int ldv, int n, int kp, int folds, Act *a);
static inline __attribute__((always_inline)) TARGET void kernel(
    const int R, const int FG, const char *const *wb, const float *const *sb, const float *const *ub,
    const Act *a, int f0, float *out, int ldo);

/* ------------------------------------------------------------------ vector math */
static inline TARGET __m512 vexp(__m512 x) {
    /* e^x, |rel err| < 2e-7 on [-87, 87] (clamped): 2^n * poly(x - n ln2) */
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693145751953125f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.98412698e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.38888889e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.33333333e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.16666667e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66666667e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline TARGET __m512 vsigmoid(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, vexp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

static inline TARGET __m512 vtanh(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = vexp(_mm512_mul_ps(x, _mm512_set1_ps(-2.0f)));
    return _mm512_sub_ps(_mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(one, e)), one);
}

static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* ------------------------------------------------------------------ matrix-vector products */
#define KCASE(RR, FF) case FF: kernel(RR, FF, wb, sb, ub, a, f0, out, ldo); break;
#if MAXF == 6
#define KSWITCH(RR) switch (FG) { KCASE(RR, 1) KCASE(RR, 2) KCASE(RR, 3) KCASE(RR, 4) KCASE(RR, 5) KCASE(RR, 6) }
#else
#define KSWITCH(RR) switch (FG) { KCASE(RR, 1) KCASE(RR, 2) KCASE(RR, 3) KCASE(RR, 4) }
#endif

static TARGET void matvec(int R, int FG, const char *const *wb, const float *const *sb,
                          const float *const *ub, const Act *a, int f0, float *out, int ldo) {
    switch (R) {
        case 1: KSWITCH(1) break;
        case 2: KSWITCH(2) break;
        case 3: KSWITCH(3) break;
        case 4: KSWITCH(4) break;
    }
}

static inline size_t block_bytes(const Act *a) { return (size_t)a->kp * 16 * ESIZE; }

/* Folds per kernel call: the fewest calls of at most MAXF, as even as they go (8 folds: 4 + 4,
 * not 6 + 2, so no call streams the weights for a sliver of folds). */
static inline int fold_group(int folds) {
    int calls = (folds + MAXF - 1) / MAXF;
    return (folds + calls - 1) / calls;
}

/* Rows [16 b0, 16 b1) of one matrix for all folds -> out (F, ldo) at column 16 b0. */
static TARGET void matvec_rows(const Mat *m, int b0, int b1, int folds, const Act *a, float *out, int ldo) {
    for (int b = b0; b < b1; b += MAXR) {
        int R = b1 - b < MAXR ? b1 - b : MAXR;
        const char *wb[MAXR];
        const float *sb[MAXR], *ub[MAXR];
        for (int i = 0; i < R; i++) {
            wb[i] = (const char *)m->w + (b + i) * block_bytes(a);
            sb[i] = m->scale ? m->scale + 16 * (b + i) : NULL;
            ub[i] = m->wsum ? m->wsum + 16 * (b + i) : NULL;
        }
        for (int f = 0, fg = fold_group(folds); f < folds; f += fg)
            matvec(R, folds - f < fg ? folds - f : fg, wb, sb, ub, a, f, out + (size_t)f * ldo + 16 * b, ldo);
    }
}

/* The three gates of a GRU matrix for hidden-unit block b -> out (F, 48): r, z, n. */
static TARGET void matvec_gates(const Mat *g, int b, int folds, const Act *a, float *out) {
    const char *wb[3];
    const float *sb[3], *ub[3];
    for (int i = 0; i < 3; i++) {
        wb[i] = (const char *)g[i].w + b * block_bytes(a);
        sb[i] = g[i].scale ? g[i].scale + 16 * b : NULL;
        ub[i] = g[i].wsum ? g[i].wsum + 16 * b : NULL;
    }
    for (int f = 0, fg = fold_group(folds); f < folds; f += fg)
        matvec(3, folds - f < fg ? folds - f : fg, wb, sb, ub, a, f, out + (size_t)f * 48, 48);
}

/* A dense layer's rows [16 b0, 16 b1) for all folds from the prepared input a:
 * out (F, ldo) = W in + add, ReLU if relu; add: (F, ld_add), ld_add = 0 for a shared bias. */
static TARGET void dense(const Mat *w, int b0, int b1, int folds, const Act *a, const float *add, int ld_add,
                         int relu, int n_out, float *out, int ldo) {
    matvec_rows(w, b0, b1, folds, a, out, ldo);
    for (int f = 0; f < folds; f++)
        for (int b = b0; b < b1; b++) {
            __mmask16 mk = lanes(n_out - 16 * b);
            float *o = out + (size_t)f * ldo + 16 * b;
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(o),
                                     _mm512_maskz_loadu_ps(mk, add + (size_t)f * ld_add + 16 * b));
            if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
            _mm512_storeu_ps(o, v);
        }
}

/* Inverse-CDF draw from softmax(lg[0:n]) with uniform u; lg is overwritten with exp(lg - max). */
static TARGET int64_t sample(float *lg, int n, float u) {
    __m512 mx = _mm512_set1_ps(-INFINITY), total = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16)
        mx = _mm512_mask_max_ps(mx, lanes(n - j), mx, _mm512_loadu_ps(lg + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    for (int j = 0; j < n; j += 16) {
        __mmask16 mk = lanes(n - j);
        __m512 e = vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, lg + j), m));
        _mm512_mask_storeu_ps(lg + j, mk, e);
        total = _mm512_mask_add_ps(total, mk, total, e);
    }
    float target = u * _mm512_reduce_add_ps(total), c = 0.0f;
    int64_t k;
    for (k = 0; k < n - 1; k++) {
        c += lg[k];
        if (c > target) break;
    }
    return k;
}

/* ------------------------------------------------------------------ the loop */
static inline size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline void split(int n, int tid, int nt, int *lo, int *hi) {
    *lo = (int)((long)n * tid / nt);
    *hi = (int)((long)n * (tid + 1) / nt);
}

/* The next `bytes` (rounded up to 64) of a thread's scratch. */
static inline void *take(char **p, size_t bytes) {
    void *r = *p;
    *p += up64(bytes);
    return r;
}

/* Activations of F rows of kp values (4 bytes bounds every precision's element). */
static inline Act act_take(char **p, int F, int kp) {
    Act a = {take(p, 4 * (size_t)F * kp), take(p, 4 * (size_t)F), take(p, 4 * (size_t)F),
             take(p, 4 * (size_t)F), 0};
    return a;
}

TARGET void RUN_NAME(const Shared *sh, int tid, int T) {
    const Job *jb = sh->job;
    const Net *m = jb->net;
    const int F = jb->n_folds, r = m->r, fc = m->fc, nc = m->n_cls, ni = m->n_in, na = m->n_aux;
    const int rp = m->rp, fcp = m->fcp, ncp = m->ncp, ih2p = m->ih2p, fc2p = m->fc2p;
    const int width = ni + 3 * na;             /* an input row: [mel | a1 | a2 | a3 | a4] */
    const int vp = ih2p > fc2p ? ih2p : fc2p;  /* the widest layer input */
    char *mine = sh->scratch + tid * sh->per_thread;
    Act act = act_take(&mine, F, vp), ain = act_take(&mine, F, m->inp);
    float *x1 = take(&mine, 4 * (size_t)F * ih2p), *v = take(&mine, 4 * (size_t)F * vp);
    float *tmp = take(&mine, 4 * (size_t)F * 48), *tin = take(&mine, 4 * (size_t)F * 48);
    int ub0, ub1, f0, f1, c0, c1, o0, o1;
    split(rp / 16, tid, T, &ub0, &ub1);   /* hidden-unit blocks */
    split(fcp / 16, tid, T, &c0, &c1);    /* fc row blocks */
    split(ncp / 16, tid, T, &o0, &o1);    /* output row blocks */
    split(F, tid, T, &f0, &f1);           /* folds (sampling) */
    float *h1 = jb->h1, *h1n = sh->h1next, *h2 = jb->h2, *x = jb->x;
    for (int t = 0; t < jb->n_steps; t++) {
        const float *row = jb->rows + (size_t)t * F * width;
        /* phase 1: input layer and GRU 1 for my hidden units; W_hh2 h2 + b_hh2 for my units */
        prepare(row, width, ni, m->inp, F, &ain);  /* [mel | a1] */
        dense(&m->in, ub0, ub1, F, &ain, m->b_in, 0, 0, r, sh->pi, rp);
        prepare(h1, r, r, rp, F, &act);
        for (int b = ub0; b < ub1; b++) {
            const int j = 16 * b;
            const __mmask16 mk = lanes(r - j);
            matvec_gates(m->hh1, b, F, &act, tmp);
            matvec_gates(m->p1, b, F, &ain, tin);
            for (int f = 0; f < F; f++) {
                const float *gh = tmp + 48 * f, *gi = tin + 48 * f;
                const __m512 xf = _mm512_set1_ps(x[f]);
#define GATE_IN(g) _mm512_add_ps(_mm512_fmadd_ps(xf, _mm512_maskz_loadu_ps(mk, m->u1 + (g) * r + j), \
                                                 _mm512_loadu_ps(gi + 16 * (g))), \
                                 _mm512_maskz_loadu_ps(mk, m->b_p1 + (g) * r + j))
#define GATE_H(g) _mm512_add_ps(_mm512_loadu_ps(gh + 16 * (g)), _mm512_maskz_loadu_ps(mk, m->b_hh1 + (g) * r + j))
                __m512 rg = vsigmoid(_mm512_add_ps(GATE_IN(0), GATE_H(0)));
                __m512 zg = vsigmoid(_mm512_add_ps(GATE_IN(1), GATE_H(1)));
                __m512 n = vtanh(_mm512_fmadd_ps(rg, GATE_H(2), GATE_IN(2)));
#undef GATE_IN
#undef GATE_H
                __m512 hp = _mm512_maskz_loadu_ps(mk, h1 + (size_t)f * r + j);
                _mm512_mask_storeu_ps(h1n + (size_t)f * r + j, mk, _mm512_fmadd_ps(zg, _mm512_sub_ps(hp, n), n));
            }
        }
        prepare(h2, r, r, rp, F, &act);
        for (int b = ub0; b < ub1; b++) {
            const int j = 16 * b;
            const __mmask16 mk = lanes(r - j);
            matvec_gates(m->hh2, b, F, &act, tmp);
            for (int f = 0; f < F; f++)
                for (int g = 0; g < 3; g++)
                    _mm512_mask_storeu_ps(sh->gh2 + (size_t)f * 3 * r + g * r + j, mk,
                                          _mm512_add_ps(_mm512_loadu_ps(tmp + 48 * f + 16 * g),
                                                        _mm512_maskz_loadu_ps(mk, m->b_hh2 + g * r + j)));
        }
        #pragma omp barrier
        /* phase 2: x1 = I(...) + h1' (every thread, whole); GRU 2 on [x1 | a2] for my hidden units */
        for (int f = 0; f < F; f++) {
            float *xr = x1 + (size_t)f * ih2p;
            for (int j = 0; j < r; j++) xr[j] = sh->pi[(size_t)f * rp + j] + x[f] * m->w_x[j] + h1n[(size_t)f * r + j];
            memcpy(xr + r, row + (size_t)f * width + ni, sizeof(float) * na);
        }
        prepare(x1, ih2p, r + na, ih2p, F, &act);
        for (int b = ub0; b < ub1; b++) {
            const int j = 16 * b;
            const __mmask16 mk = lanes(r - j);
            matvec_gates(m->ih2, b, F, &act, tmp);
            for (int f = 0; f < F; f++) {
                const float *gi = tmp + 48 * f, *gh = sh->gh2 + (size_t)f * 3 * r;
#define GATE(g) _mm512_add_ps(_mm512_loadu_ps(gi + 16 * (g)), _mm512_maskz_loadu_ps(mk, m->b_ih2 + (g) * r + j))
                __m512 rg = vsigmoid(_mm512_add_ps(GATE(0), _mm512_maskz_loadu_ps(mk, gh + j)));
                __m512 zg = vsigmoid(_mm512_add_ps(GATE(1), _mm512_maskz_loadu_ps(mk, gh + r + j)));
                __m512 n = vtanh(_mm512_fmadd_ps(rg, _mm512_maskz_loadu_ps(mk, gh + 2 * r + j), GATE(2)));
#undef GATE
                float *hp = h2 + (size_t)f * r + j;
                _mm512_mask_storeu_ps(hp, mk, _mm512_fmadd_ps(zg, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, hp), n), n));
            }
        }
        #pragma omp barrier
        /* phase 3: fc1 on [x1 + h2' | a3] for my rows */
        for (int f = 0; f < F; f++) {
            float *vr = v + (size_t)f * vp;
            for (int j = 0; j < r; j++) vr[j] = x1[(size_t)f * ih2p + j] + h2[(size_t)f * r + j];
            memcpy(vr + r, row + (size_t)f * width + ni + na, sizeof(float) * na);
        }
        prepare(v, vp, r + na, ih2p, F, &act);
        dense(&m->fc1, c0, c1, F, &act, m->b_fc1, 0, 1, fc, sh->y1, fcp);
        #pragma omp barrier
        /* phase 4: fc2 on [y1 | a4] for my rows */
        for (int f = 0; f < F; f++) {
            memcpy(v + (size_t)f * vp, sh->y1 + (size_t)f * fcp, sizeof(float) * fc);
            memcpy(v + (size_t)f * vp + fc, row + (size_t)f * width + ni + 2 * na, sizeof(float) * na);
        }
        prepare(v, vp, fc + na, fc2p, F, &act);
        dense(&m->fc2, c0, c1, F, &act, m->b_fc2, 0, 1, fc, sh->y2, fcp);
        #pragma omp barrier
        /* phase 5: fc3 (logits) for my rows */
        prepare(sh->y2, fcp, fc, fcp, F, &act);
        dense(&m->fc3, o0, o1, F, &act, m->b_fc3, 0, 0, nc, sh->logits, ncp);
        #pragma omp barrier
        /* phase 6: sample my folds (inverse CDF), or feed back the forced labels */
        for (int f = f0; f < f1; f++) {
            float *lg = sh->logits + (size_t)f * ncp;
            if (jb->logits) memcpy(jb->logits + ((size_t)t * F + f) * nc, lg, sizeof(float) * nc);
            int64_t k = jb->forced ? jb->forced[(size_t)t * F + f] : sample(lg, nc, jb->u[(size_t)t * F + f]);
            jb->labels[(size_t)t * F + f] = k;
            x[f] = m->lut[k];
        }
        #pragma omp barrier
        float *swap = h1; h1 = h1n; h1n = swap;
    }
    if (tid == 0 && h1 != jb->h1) memcpy(jb->h1, h1, sizeof(float) * F * r);
}

/* y (M, np) = x (M, n_in) W^T + bias for the row blocks of thread tid of T (no barrier):
 * a small-batch product for other callers (the synthesizer's decoder). y's columns and bias
 * are padded to np = 16 * row blocks; scratch: engine_linear_scratch(M, kp) bytes of this
 * thread's own (every thread prepares its own copy of the activations). */
TARGET void LINEAR_NAME(const Mat *m, int n_in, int kp, int np, const float *x, int M,
                        const float *bias, float *y, char *scratch, int tid, int T) {
    int b0, b1;
    split(np / 16, tid, T, &b0, &b1);
    if (b0 == b1) return;
    Act act = act_take(&scratch, M, kp);  /* engine_linear_scratch(M, kp) bytes */
    prepare(x, n_in, n_in, kp, M, &act);
    matvec_rows(m, b0, b1, M, &act, y, np);
    for (int f = 0; f < M; f++)
        for (int b = b0; b < b1; b++) {
            float *o = y + (size_t)f * np + 16 * b;
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), _mm512_loadu_ps(bias + 16 * b)));
        }
}
