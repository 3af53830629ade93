/* sv2tts._native: the WaveRNN generation loop and a small-batch product, a Python extension.
 *
 *   supports(precision) -> bool        this CPU has the instructions of that precision's kernel
 *   run(precision, dims, mats, vecs, rows, u, forced, x, h1, h2, labels, logits, n_threads)
 *   linear(precision, (n_out, n_in), mat, bias, x, y, n_threads)   y = x W^T + b
 *
 * precision: 0 float32, 1 bfloat16, 2 int8 (engine.h). Every array argument is a C-contiguous
 * buffer (numpy array) whose size is checked against dims = (r, fc, n_cls, n_in, n_aux); see run's
 * docstring.
 * The loop runs without the GIL on n_threads OpenMP threads (torch's own pool when torch's
 * libgomp is loaded first, as it is when sv2tts imports torch before this module).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <omp.h>
#include <stdlib.h>

#include "engine.h"

typedef void (*RunFn)(const Shared *, int, int);

typedef void (*LinearFn)(const Mat *, int, int, int, const float *, int, const float *, float *, char *, int, int);

static const RunFn RUN[N_PREC] = {engine_run_f32, engine_run_bf16, engine_run_int8};
static const LinearFn LINEAR[N_PREC] = {engine_linear_f32, engine_linear_bf16, engine_linear_int8};
static const int ESIZE[N_PREC] = {4, 2, 1};

static int cpu_supports(int prec) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64))
    __builtin_cpu_init();
    int base = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("fma");
    if (prec == PREC_BF16) return base && __builtin_cpu_supports("avx512bf16");
    if (prec == PREC_INT8) return base && __builtin_cpu_supports("avx512vnni");
    return base;
#else
    (void)prec;
    return 0;
#endif
}

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }
static int pad16(int n) { return (n + 15) / 16 * 16; }

size_t engine_linear_scratch(int M, int kp) {
    return up64(4 * (size_t)M * kp) + 3 * up64(4 * (size_t)M);
}

size_t engine_scratch_bytes(const Net *m, int folds) {
    /* loop.h's RUN_NAME takes, in order: two activations (widest input, [mel | a1]), x1, v, tmp, tin */
    size_t F = (size_t)folds, vp = m->ih2p > m->fc2p ? m->ih2p : m->fc2p;
    size_t act = 3 * up64(4 * F);
    return up64(4 * F * vp) + act + up64(4 * F * m->inp) + act + up64(4 * F * m->ih2p) + up64(4 * F * vp) +
           2 * up64(4 * F * 48);
}

/* Buffers borrowed for one call, released together. */
#define MAX_VIEWS 80  /* 16 matrices x 3 + 11 vectors + 8 job arrays = 67 */

typedef struct {
    Py_buffer view[MAX_VIEWS];
    int n;
} Views;

static void release(Views *vs) {
    for (int i = 0; i < vs->n; i++) PyBuffer_Release(&vs->view[i]);
    vs->n = 0;
}

/* Borrow obj's C-contiguous buffer for the rest of the call: *out, or -1 with an exception. */
static int view(Views *vs, PyObject *obj, int writable, Py_buffer **out) {
    if (vs->n == MAX_VIEWS) {
        PyErr_SetString(PyExc_RuntimeError, "too many buffers");
        return -1;
    }
    *out = &vs->view[vs->n];
    if (PyObject_GetBuffer(obj, *out, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    vs->n++;
    return 0;
}

/* *out = the memory of obj, checked to hold nbytes; NULL when obj is None and optional. */
static int borrow(Views *vs, PyObject *obj, Py_ssize_t nbytes, int writable, int optional,
                  const char *name, void **out) {
    Py_buffer *v;
    *out = NULL;
    if (obj == Py_None && optional) return 0;
    if (view(vs, obj, writable, &v) < 0) return -1;
    if (v->len != nbytes) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", name, nbytes, v->len);
        return -1;
    }
    *out = v->buf;
    return 0;
}

/* A packed matrix given as a (weights, scale, row_sums) tuple (scale and row sums: int8 only). */
static int borrow_mat(Views *vs, PyObject *t, const char *name, int prec, int np, int kp, Mat *m) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
        PyErr_Format(PyExc_TypeError, "%s: expected a (weights, scale, row_sums) tuple", name);
        return -1;
    }
    int q = prec == PREC_INT8;
    void *w, *scale, *wsum;
    if (borrow(vs, PyTuple_GET_ITEM(t, 0), (Py_ssize_t)np * kp * ESIZE[prec], 0, 0, name, &w) < 0 ||
        borrow(vs, PyTuple_GET_ITEM(t, 1), q ? 4 * (Py_ssize_t)np : 0, 0, !q, name, &scale) < 0 ||
        borrow(vs, PyTuple_GET_ITEM(t, 2), q ? 4 * (Py_ssize_t)np : 0, 0, !q, name, &wsum) < 0)
        return -1;
    m->w = w;
    m->scale = scale;
    m->wsum = wsum;
    return 0;
}

static PyObject *py_supports(PyObject *self, PyObject *arg) {
    (void)self;
    long prec = PyLong_AsLong(arg);
    if (prec == -1 && PyErr_Occurred()) return NULL;
    return PyBool_FromLong(prec >= 0 && prec < N_PREC && cpu_supports((int)prec));
}

static PyObject *py_run(PyObject *self, PyObject *args) {
    (void)self;
    int prec, r, fc, nc, n_in, n_aux, n_threads;
    PyObject *mats, *vecs, *rows_obj, *u_obj, *forced_obj, *x_obj, *h1_obj, *h2_obj, *labels_obj, *logits_obj;
    if (!PyArg_ParseTuple(args, "i(iiiii)O!O!OOOOOOOOi", &prec, &r, &fc, &nc, &n_in, &n_aux, &PyTuple_Type,
                          &mats, &PyTuple_Type, &vecs, &rows_obj, &u_obj, &forced_obj, &x_obj, &h1_obj,
                          &h2_obj, &labels_obj, &logits_obj, &n_threads))
        return NULL;
    if (prec < 0 || prec >= N_PREC || !cpu_supports(prec))
        return PyErr_Format(PyExc_RuntimeError, "precision %d is not supported on this CPU", prec);
    if (r < 1 || fc < 1 || nc < 2 || n_in < 1 || n_aux < 1 || PyTuple_GET_SIZE(mats) != 16 ||
        PyTuple_GET_SIZE(vecs) != 11)
        return PyErr_Format(PyExc_ValueError, "bad dims or argument counts");
    Net net = {.r = r, .fc = fc, .n_cls = nc, .n_in = n_in, .n_aux = n_aux, .rp = pad16(r), .fcp = pad16(fc),
               .ncp = pad16(nc), .inp = pad16(n_in), .ih2p = pad16(r + n_aux), .fc2p = pad16(fc + n_aux)};
    Views vs = {.n = 0};
    Job job = {.net = &net};
    int ok = 0;
    {
        static const char *names[16] = {"hh1.r", "hh1.z", "hh1.n", "ih2.r", "ih2.z", "ih2.n", "hh2.r", "hh2.z",
                                        "hh2.n", "fc1", "fc2", "fc3", "in", "p1.r", "p1.z", "p1.n"};
        Mat *mat[16] = {&net.hh1[0], &net.hh1[1], &net.hh1[2], &net.ih2[0], &net.ih2[1], &net.ih2[2],
                        &net.hh2[0], &net.hh2[1], &net.hh2[2], &net.fc1, &net.fc2, &net.fc3,
                        &net.in, &net.p1[0], &net.p1[1], &net.p1[2]};
        int np[16] = {net.rp, net.rp, net.rp, net.rp, net.rp, net.rp, net.rp, net.rp, net.rp,
                      net.fcp, net.fcp, net.ncp, net.rp, net.rp, net.rp, net.rp};
        int kp[16] = {net.rp, net.rp, net.rp, net.ih2p, net.ih2p, net.ih2p, net.rp, net.rp, net.rp,
                      net.ih2p, net.fc2p, net.fcp, net.inp, net.inp, net.inp, net.inp};
        for (int i = 0; i < 16; i++)
            if (borrow_mat(&vs, PyTuple_GET_ITEM(mats, i), names[i], prec, np[i], kp[i], mat[i]) < 0) goto done;
        const float **vec[11] = {&net.u1, &net.w_x, &net.b_hh1, &net.b_hh2, &net.b_fc3, &net.lut,
                                 &net.b_in, &net.b_p1, &net.b_ih2, &net.b_fc1, &net.b_fc2};
        Py_ssize_t vlen[11] = {3 * r, r, 3 * r, 3 * r, nc, nc, r, 3 * r, 3 * r, fc, fc};
        for (int i = 0; i < 11; i++)
            if (borrow(&vs, PyTuple_GET_ITEM(vecs, i), 4 * vlen[i], 0, 0, "vector", (void **)vec[i]) < 0) goto done;
        /* folds from x, steps from rows */
        Py_buffer *xv, *rv;
        if (view(&vs, x_obj, 1, &xv) < 0) goto done;
        Py_ssize_t F = xv->len / 4, width = n_in + 3 * (Py_ssize_t)n_aux;
        if (F < 1) {
            PyErr_SetString(PyExc_ValueError, "x: no fold");
            goto done;
        }
        if (view(&vs, rows_obj, 0, &rv) < 0) goto done;
        Py_ssize_t steps = rv->len / (4 * F * width);
        if (steps * 4 * F * width != rv->len) {
            PyErr_SetString(PyExc_ValueError, "rows: expected (steps, folds, n_in + 3 n_aux) float32");
            goto done;
        }
        job.n_folds = (int32_t)F;
        job.n_steps = (int32_t)steps;
        job.rows = rv->buf;
        job.x = xv->buf;
        if (borrow(&vs, u_obj, 4 * steps * F, 0, forced_obj != Py_None, "u", (void **)&job.u) < 0 ||
            borrow(&vs, forced_obj, 8 * steps * F, 0, 1, "forced", (void **)&job.forced) < 0 ||
            borrow(&vs, h1_obj, 4 * F * r, 1, 0, "h1", (void **)&job.h1) < 0 ||
            borrow(&vs, h2_obj, 4 * F * r, 1, 0, "h2", (void **)&job.h2) < 0 ||
            borrow(&vs, labels_obj, 8 * steps * F, 1, 0, "labels", (void **)&job.labels) < 0 ||
            borrow(&vs, logits_obj, 4 * steps * F * nc, 1, 1, "logits", (void **)&job.logits) < 0)
            goto done;
        if (job.forced)
            for (Py_ssize_t i = 0; i < steps * F; i++)
                if (job.forced[i] < 0 || job.forced[i] >= nc) {
                    PyErr_SetString(PyExc_ValueError, "forced: label out of range");
                    goto done;
                }
        int T = n_threads < 1 ? 1 : n_threads;
        Shared sh = {&job, malloc(sizeof(float) * F * r), malloc(sizeof(float) * F * net.rp),
                     malloc(sizeof(float) * F * 3 * r), malloc(sizeof(float) * F * net.fcp),
                     malloc(sizeof(float) * F * net.fcp), malloc(sizeof(float) * F * net.ncp), NULL,
                     engine_scratch_bytes(&net, (int)F)};
        sh.scratch = aligned_alloc(64, T * sh.per_thread);
        if (!sh.h1next || !sh.pi || !sh.gh2 || !sh.y1 || !sh.y2 || !sh.logits || !sh.scratch) {
            PyErr_NoMemory();
        } else if (steps > 0) {
            RunFn fn = RUN[prec];
            Py_BEGIN_ALLOW_THREADS
            #pragma omp parallel num_threads(T)
            fn(&sh, omp_get_thread_num(), omp_get_num_threads());
            Py_END_ALLOW_THREADS
            ok = 1;
        } else {
            ok = 1;
        }
        free(sh.h1next); free(sh.pi); free(sh.gh2); free(sh.y1); free(sh.y2); free(sh.logits); free(sh.scratch);
    }
done:
    release(&vs);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_linear(PyObject *self, PyObject *args) {
    (void)self;
    int prec, n_out, n_in, n_threads;
    PyObject *mat, *b_obj, *x_obj, *y_obj;
    if (!PyArg_ParseTuple(args, "i(ii)O!OOOi", &prec, &n_out, &n_in, &PyTuple_Type, &mat, &b_obj, &x_obj,
                          &y_obj, &n_threads))
        return NULL;
    if (prec < 0 || prec >= N_PREC || !cpu_supports(prec))
        return PyErr_Format(PyExc_RuntimeError, "precision %d is not supported on this CPU", prec);
    if (n_out < 1 || n_in < 1) return PyErr_Format(PyExc_ValueError, "bad dims");
    int np = pad16(n_out), kp = pad16(n_in);
    Views vs = {.n = 0};
    Mat m;
    void *bias, *y;
    Py_buffer *xv;
    int ok = 0;
    if (borrow_mat(&vs, mat, "weights", prec, np, kp, &m) < 0 ||
        borrow(&vs, b_obj, 4 * (Py_ssize_t)np, 0, 0, "bias", &bias) < 0 || view(&vs, x_obj, 0, &xv) < 0)
        goto done;
    Py_ssize_t M = xv->len / (4 * (Py_ssize_t)n_in);
    if (M < 1 || M * 4 * n_in != xv->len) {
        PyErr_SetString(PyExc_ValueError, "x: expected (M, n_in) float32");
        goto done;
    }
    if (borrow(&vs, y_obj, 4 * M * np, 1, 0, "y", &y) < 0) goto done;
    int T = n_threads < 1 ? 1 : n_threads;
    size_t per = engine_linear_scratch((int)M, kp);
    char *scratch = aligned_alloc(64, T * per);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    const float *x = xv->buf;
    LinearFn fn = LINEAR[prec];
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel num_threads(T)
    fn(&m, n_in, kp, np, x, (int)M, bias, y, scratch + omp_get_thread_num() * per, omp_get_thread_num(),
       omp_get_num_threads());
    Py_END_ALLOW_THREADS
    free(scratch);
    ok = 1;
done:
    release(&vs);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"supports", py_supports, METH_O, "supports(precision: int) -> bool: this CPU can run that kernel."},
    {"run", py_run, METH_VARARGS,
     "run(precision, (r, fc, n_cls, n_in, n_aux), mats, vecs, rows, u, forced, x, h1, h2, labels, logits,\n"
     "    n_threads)\n\n"
     "Runs len(rows) steps in place on the state x (F,), h1, h2 (F, r) float32.\n"
     "mats: 16 (weights, scale, row_sums) tuples, packed as core.native.pack_weights does, for\n"
     "hh1 r/z/n, ih2 r/z/n, hh2 r/z/n, fc1, fc2, fc3, in, p1 r/z/n (scale and row_sums None unless int8).\n"
     "vecs: u1 (3r), w_x (r), b_hh1 (3r), b_hh2 (3r), b_fc3 (n), lut (n), b_in (r), b_p1 (3r),\n"
     "b_ih2 (3r), b_fc1 (fc), b_fc2 (fc) float32.\n"
     "rows: (steps, F, n_in + 3 n_aux) float32, each [mel | a1 | a2 | a3 | a4].\n"
     "Samples with uniforms u (steps, F) float32, or feeds back forced (steps, F) int64 labels;\n"
     "writes labels (steps, F) int64 and, when not None, logits (steps, F, n) float32."},
    {"linear", py_linear, METH_VARARGS,
     "linear(precision, (n_out, n_in), mat, bias, x, y, n_threads): y (M, Np) = x (M, n_in) W^T + bias (Np,)\n"
     "float32; mat is the (weights, scale, row_sums) tuple of pack_weights(W, precision); Np = n_out\n"
     "padded to 16. int8 quantises each row of x (per-row scale and centre)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native",
                                    "sv2tts's C engine (see engine.h).", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
