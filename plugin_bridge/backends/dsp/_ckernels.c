/* The sample-recursive loops of `_kernels.py`, compiled ahead of time (an optional extension).
 *
 * Each function is the same loop as its Python reference in `_kernels.py`, with the same operations
 * in the same order and type, so the numbers are identical: build with -ffp-contract=off (no fused
 * multiply-adds, which would round differently). numba compiles the same references when this
 * module is not built; this one exists because numba's start-up (~0.35 s per process, even with its
 * machine code cached) was a sixth of a cold `plugin-bridge mix`.
 *
 * Arrays arrive as C-contiguous writable buffers; `_kernels.py` checks shapes and dtypes first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define SOS_LOOP(T)                                                                      \
    for (Py_ssize_t s = 0; s < sections; s++) {                                           \
        const T b0 = sos[6 * s], b1 = sos[6 * s + 1], b2 = sos[6 * s + 2];                \
        const T a1 = sos[6 * s + 4], a2 = sos[6 * s + 5];                                 \
        Py_ssize_t c = 0;                                                                 \
        for (; c + 1 < channels; c += 2) {                                                \
            T *zu = zi + 2 * (s * channels + c), *zv = zu + 2;                            \
            T p0 = zu[0], p1 = zu[1], q0 = zv[0], q1 = zv[1];                             \
            T *yu_row = y + c * n, *yv_row = y + (c + 1) * n;                             \
            for (Py_ssize_t i = 0; i < n; i++) {                                          \
                const T u = yu_row[i], v = yv_row[i];                                     \
                const T yu = b0 * u + p0;                                                 \
                const T yv = b0 * v + q0;                                                 \
                p0 = b1 * u - a1 * yu + p1;                                               \
                q0 = b1 * v - a1 * yv + q1;                                               \
                p1 = b2 * u - a2 * yu;                                                    \
                q1 = b2 * v - a2 * yv;                                                    \
                yu_row[i] = yu;                                                           \
                yv_row[i] = yv;                                                           \
            }                                                                             \
            zu[0] = p0, zu[1] = p1, zv[0] = q0, zv[1] = q1;                               \
        }                                                                                 \
        if (c < channels) {                                                               \
            T *zu = zi + 2 * (s * channels + c);                                          \
            T p0 = zu[0], p1 = zu[1];                                                     \
            T *row = y + c * n;                                                           \
            for (Py_ssize_t i = 0; i < n; i++) {                                          \
                const T u = row[i];                                                       \
                const T yu = b0 * u + p0;                                                 \
                p0 = b1 * u - a1 * yu + p1;                                               \
                p1 = b2 * u - a2 * yu;                                                    \
                row[i] = yu;                                                              \
            }                                                                             \
            zu[0] = p0, zu[1] = p1;                                                       \
        }                                                                                 \
    }

static void sos_f64(const double *sos, double *y, double *zi, Py_ssize_t sections, Py_ssize_t channels,
                    Py_ssize_t n) {
    SOS_LOOP(double)
}

static void sos_f32(const float *sos, float *y, float *zi, Py_ssize_t sections, Py_ssize_t channels,
                    Py_ssize_t n) {
    SOS_LOOP(float)
}

/* sos_filter(sos, y, zi, sections, channels, n, itemsize): y (channels, n) filtered in place by the
 * sections sos (sections, 6) from the state zi (sections, channels, 2), updated in place; all three of
 * one float dtype of `itemsize` bytes (8 or 4). */
static PyObject *py_sos_filter(PyObject *self, PyObject *args) {
    Py_buffer sos, y, zi;
    Py_ssize_t sections, channels, n, itemsize;
    if (!PyArg_ParseTuple(args, "y*w*w*nnnn", &sos, &y, &zi, &sections, &channels, &n, &itemsize))
        return NULL;
    int ok = sos.len >= 6 * sections * itemsize && y.len >= channels * n * itemsize &&
             zi.len >= 2 * sections * channels * itemsize && (itemsize == 8 || itemsize == 4);
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        if (itemsize == 8)
            sos_f64((const double *)sos.buf, (double *)y.buf, (double *)zi.buf, sections, channels, n);
        else
            sos_f32((const float *)sos.buf, (float *)y.buf, (float *)zi.buf, sections, channels, n);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&sos);
    PyBuffer_Release(&y);
    PyBuffer_Release(&zi);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "sos_filter: buffers too small for the given shape, or not float32/64");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* peak_envelope(x, env0, cte_attack, cte_release, out) -> last: float64 buffers of one length. */
static PyObject *py_peak_envelope(PyObject *self, PyObject *args) {
    Py_buffer x, out;
    double env, cte_attack, cte_release;
    if (!PyArg_ParseTuple(args, "y*dddw*", &x, &env, &cte_attack, &cte_release, &out)) return NULL;
    Py_ssize_t n = x.len / (Py_ssize_t)sizeof(double);
    int ok = out.len >= x.len;
    if (ok) {
        const double *xs = (const double *)x.buf;
        double *o = (double *)out.buf;
        /* locals: the parsed values' addresses escaped, which would keep them in memory in the loop */
        const double attack = cte_attack, release = cte_release;
        double e = env;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            const double v = fabs(xs[i]);
            const double cte = v > e ? attack : release;
            e = v + cte * (e - v);
            o[i] = e;
        }
        Py_END_ALLOW_THREADS
        env = e;
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "peak_envelope: out is shorter than x");
        return NULL;
    }
    return PyFloat_FromDouble(env);
}

/* release_smoother(s, g0, coeff, out) -> last: float64 buffers of one length. */
static PyObject *py_release_smoother(PyObject *self, PyObject *args) {
    Py_buffer s, out;
    double g, coeff;
    if (!PyArg_ParseTuple(args, "y*ddw*", &s, &g, &coeff, &out)) return NULL;
    Py_ssize_t n = s.len / (Py_ssize_t)sizeof(double);
    int ok = out.len >= s.len;
    if (ok) {
        const double *ss = (const double *)s.buf;
        double *o = (double *)out.buf;
        const double k = coeff; /* locals, as in peak_envelope */
        double h = g;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            const double v = ss[i];
            if (v <= h)
                h = v;
            else
                h = h + k * (v - h);
            o[i] = h;
        }
        Py_END_ALLOW_THREADS
        g = h;
    }
    PyBuffer_Release(&s);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "release_smoother: out is shorter than s");
        return NULL;
    }
    return PyFloat_FromDouble(g);
}

static PyMethodDef methods[] = {
    {"sos_filter", py_sos_filter, METH_VARARGS, "Second-order sections in place (see _kernels._sos_filter)."},
    {"peak_envelope", py_peak_envelope, METH_VARARGS, "Peak ballistics (see _kernels._peak_envelope)."},
    {"release_smoother", py_release_smoother, METH_VARARGS, "Release smoothing (see _kernels._release_smoother)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", "Compiled recursive loops.", -1, methods};

PyMODINIT_FUNC PyInit__ckernels(void) { return PyModule_Create(&module); }
