/* sv2tts's C engine: the WaveRNN generation loop, and a small-batch product.
 * Shared types; module.c is the Python side (the extension module sv2tts._native).
 *
 * One call runs a chunk of steps of the loop in sv2tts/vocoder/engines.py with the same math.
 * Each step reads its fold's input row [mel | a1 | a2 | a3 | a4] (time-major (steps, folds,
 * mels + 4 aux)) and runs, for every fold: the input layer and GRU 1's input product from
 * [mel | a1] (through W_ih1 W_I, formed once), GRU 1, GRU 2 on [x1 | a2], fc1 on [x1 + h2 | a3],
 * fc2 on [y1 | a4], fc3 and inverse-CDF sampling. One file per weight precision (f32.c, bf16.c,
 * int8.c) defines the matrix-vector kernel and includes loop.h; each is compiled for its own
 * instruction set (function target attributes) and chosen at run time by module.c from the
 * CPU's features.
 */
#ifndef SV2TTS_ENGINE_H
#define SV2TTS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

enum { PREC_F32 = 0, PREC_BF16 = 1, PREC_INT8 = 2, N_PREC = 3 };

/* A weight matrix (N, K) packed in blocks of 16 rows: [Np/16][Kp/G][16][G] elements with
 * G = 4 / element size (f32: G = 1, bf16: G = 2, int8: G = 4, stored as w + 128); Np and Kp are
 * N and K padded with zeros to multiples of 16. int8 only: per-row scale and int8 row sums. */
typedef struct {
    const void *w;
    const float *scale;  /* (Np,), 0 on padding rows; NULL for f32 / bf16 */
    const float *wsum;   /* (Np,); NULL for f32 / bf16 */
} Mat;

typedef struct {
    int32_t r, fc, n_cls;      /* GRU width, fc width, classes */
    int32_t n_in, n_aux;       /* input-layer inputs [mel | a1] (mels + aux), each aux piece */
    int32_t rp, fcp, ncp;      /* r, fc, n_cls padded up to a multiple of 16 */
    int32_t inp, ih2p, fc2p;   /* n_in, r + n_aux, fc + n_aux padded (the inputs' widths) */
    Mat in, p1[3];             /* input layer (r, n_in); W_ih1 W_I (3r, n_in) split per gate */
    Mat hh1[3], ih2[3], hh2[3], fc1, fc2, fc3;  /* GRU matrices split per gate (r, z, n) */
    const float *b_in, *b_p1;  /* (r), (3r): b_I, W_ih1 b_I + b_ih1 */
    const float *u1;           /* (3r) W_ih1 @ w_x */
    const float *w_x;          /* (r) input-layer column of the fed-back sample */
    const float *b_hh1, *b_ih2, *b_hh2;  /* (3r) */
    const float *b_fc1, *b_fc2, *b_fc3;  /* (fc), (fc), (n_cls) */
    const float *lut;          /* (n_cls) label -> fed-back sample */
} Net;

typedef struct {
    const Net *net;
    int32_t n_folds, n_steps;
    const float *rows;         /* (steps, F, n_in + 3 n_aux) input rows [mel | a1 | a2 | a3 | a4] */
    const float *u;            /* (steps, F) uniforms in [0, 1), or NULL with forced */
    const int64_t *forced;     /* (steps, F) labels to feed back instead of sampling, or NULL */
    float *x, *h1, *h2;        /* state in/out: (F), (F, r), (F, r) */
    int64_t *labels;           /* (steps, F) out */
    float *logits;             /* (steps, F, n_cls) out, or NULL */
} Job;

/* Scratch shared by the threads of one call, allocated by module.c. */
typedef struct {
    const Job *job;
    float *h1next, *pi, *gh2, *y1, *y2, *logits;  /* pi: (F, rp) input layer */
    char *scratch;             /* per-thread scratch, per_thread bytes each, 64-byte aligned */
    size_t per_thread;
} Shared;

/* Per-thread scratch bytes for F folds (the same bound for every precision). */
size_t engine_scratch_bytes(const Net *m, int folds);

/* Thread tid of T runs its part of every step; called inside one OpenMP parallel region. */
void engine_run_f32(const Shared *sh, int tid, int T);
void engine_run_bf16(const Shared *sh, int tid, int T);
void engine_run_int8(const Shared *sh, int tid, int T);

/* y (M, np) = x (M, n_in) W^T + bias (np) with W packed as above (any precision; int8 also
 * quantises each row of x), for the row blocks of thread tid of T; scratch holds
 * engine_linear_scratch(M, kp) bytes of this thread's own. */
size_t engine_linear_scratch(int M, int kp);
void engine_linear_f32(const Mat *m, int n_in, int kp, int np, const float *x, int M,
                       const float *bias, float *y, char *scratch, int tid, int T);
void engine_linear_bf16(const Mat *m, int n_in, int kp, int np, const float *x, int M,
                        const float *bias, float *y, char *scratch, int tid, int T);
void engine_linear_int8(const Mat *m, int n_in, int kp, int np, const float *x, int M,
                        const float *bias, float *y, char *scratch, int tid, int T);

#endif
