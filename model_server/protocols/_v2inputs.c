/* Open Inference Protocol request inputs decoded in one call when they take the common form.
 *
 * Checking a v2 input in Python (its name, datatype, shape, the limits, the type of every
 * number) costs more per request than the rest of the protocol together; v2 REST ran at 0.9 of
 * TF Serving's REST API for a small model. This does those checks, and the conversion to the
 * datatype, in one pass over what the JSON parser gave.
 *
 * decode(items, max_elements, max_bytes, ndarray) -> None | [(name, code, shape, buffer)]
 *   items: the request's "inputs" as json_body parsed them. Every item must be a dict with
 *   exactly the keys name, datatype, shape and data:
 *     name      a string, not used by an earlier item;
 *     datatype  FP32, FP64, INT32 or INT64;
 *     shape     a list of non-negative ints, at most max_elements elements and max_bytes bytes,
 *               and every item's bytes together at most max_bytes;
 *     data      a flat list of exactly that many numbers (ints, or floats for FP32 and FP64;
 *               no bools; ints within the datatype's range, and within 2^53 for the float
 *               types, so that each is rounded once; floats finite, and within float32's
 *               range for FP32), or a C-contiguous float64 or int64 array of that many
 *               (json_body's arrays: exactly of type `ndarray`, numpy's, passed in so that this
 *               needs no numpy headers).
 *   code: the numpy type character of buffer ('f', 'd', 'i' or 'q'); buffer: a bytearray.
 * None: anything else. The caller then decodes the inputs its general way, which accepts or
 * names what is wrong, so this only ever accepts what that accepts, with the same values (the
 * tests compare the two).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef enum { FP32, FP64, INT32, INT64 } Kind;

static const struct {
    const char *name;
    Kind kind;
    Py_ssize_t itemsize;
    const char *code;
} DATATYPES[] = {
    {"FP32", FP32, 4, "f"},
    {"FP64", FP64, 8, "d"},
    {"INT32", INT32, 4, "i"},
    {"INT64", INT64, 8, "q"},
};

#define MAX_EXACT_INT (INT64_C(1) << 53)

static PyObject *KEY_NAME, *KEY_DATATYPE, *KEY_SHAPE, *KEY_DATA;

/* 1: stored; 0: not the common form (the caller gives up on the fast path). */
static int store_int(long long v, Kind kind, char *out, Py_ssize_t i) {
    switch (kind) {
    case FP32:
        if (v > MAX_EXACT_INT || v < -MAX_EXACT_INT)
            return 0;
        ((float *)out)[i] = (float)(double)v;
        return 1;
    case FP64:
        if (v > MAX_EXACT_INT || v < -MAX_EXACT_INT)
            return 0;
        ((double *)out)[i] = (double)v;
        return 1;
    case INT32:
        if (v > INT32_MAX || v < INT32_MIN)
            return 0;
        ((int32_t *)out)[i] = (int32_t)v;
        return 1;
    case INT64:
        ((int64_t *)out)[i] = (int64_t)v;
        return 1;
    }
    return 0;
}

static int store_double(double d, Kind kind, char *out, Py_ssize_t i) {
    if (!isfinite(d) || (kind == FP32 && fabs(d) > FLT_MAX))
        return 0; /* an infinity, or a float32 overflow: left to the general path */
    if (kind == FP32) {
        ((float *)out)[i] = (float)d;
        return 1;
    }
    if (kind == FP64) {
        ((double *)out)[i] = d;
        return 1;
    }
    return 0; /* a float for an integer datatype: refused, by the general path */
}

/* The numbers of a list (as many as `out` holds) into `out`; 1: done, 0: not the common form. */
static int fill_list(PyObject *data, Kind kind, char *out, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyList_GET_ITEM(data, i);
        if (PyFloat_CheckExact(value)) {
            if (!store_double(PyFloat_AS_DOUBLE(value), kind, out, i))
                return 0;
        } else if (PyLong_CheckExact(value)) { /* not a bool: its type is a subclass */
            int overflow = 0;
            long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (overflow || (v == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return 0;
            }
            if (!store_int(v, kind, out, i))
                return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

/* The numbers of an int64 or float64 buffer into `out`; 1: done, 0: not the common form. An
 * int64 array for a float datatype converts like the general path's cast: exactly up to 2^53,
 * and beyond that this gives up (store_int) rather than round twice. */
static int fill_buffer(const Py_buffer *view, int integer, Kind kind, char *out,
                       Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        int stored = integer ? store_int(((const int64_t *)view->buf)[i], kind, out, i)
                             : store_double(((const double *)view->buf)[i], kind, out, i);
        if (!stored)
            return 0;
    }
    return 1;
}

/* The element count of a shape list, or -1 if it is not the common form or over the limits. */
static long long elements_of(PyObject *shape, long long max_elements) {
    if (!PyList_CheckExact(shape))
        return -1;
    long long elements = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(shape); i++) {
        PyObject *dim = PyList_GET_ITEM(shape, i);
        if (!PyLong_CheckExact(dim))
            return -1;
        int overflow = 0;
        long long d = PyLong_AsLongLongAndOverflow(dim, &overflow);
        if (overflow || d < 0) {
            PyErr_Clear();
            return -1;
        }
        if (d > 0 && elements > max_elements / d)
            return -1; /* over the limit: the general path names it */
        elements *= d;
    }
    return elements <= max_elements ? elements : -1;
}

/* One item as (name, code, shape, buffer); None if not the common form, NULL on error. */
static PyObject *decode_item(PyObject *item, PyObject *ndarray, long long max_elements,
                             long long *bytes_left) {
    if (!PyDict_CheckExact(item) || PyDict_GET_SIZE(item) != 4)
        Py_RETURN_NONE;
    PyObject *name = PyDict_GetItemWithError(item, KEY_NAME);
    PyObject *datatype = PyDict_GetItemWithError(item, KEY_DATATYPE);
    PyObject *shape = PyDict_GetItemWithError(item, KEY_SHAPE);
    PyObject *data = PyDict_GetItemWithError(item, KEY_DATA);
    if (PyErr_Occurred())
        return NULL;
    if (name == NULL || datatype == NULL || shape == NULL || data == NULL ||
        !PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(datatype))
        Py_RETURN_NONE;
    size_t which = 0;
    while (which < sizeof DATATYPES / sizeof DATATYPES[0] &&
           PyUnicode_CompareWithASCIIString(datatype, DATATYPES[which].name) != 0)
        which++;
    if (which == sizeof DATATYPES / sizeof DATATYPES[0])
        Py_RETURN_NONE;
    Py_ssize_t itemsize = DATATYPES[which].itemsize;
    long long elements = elements_of(shape, max_elements);
    if (elements < 0 || elements > *bytes_left / itemsize)
        Py_RETURN_NONE; /* past the tensor's or the request's byte limit */
    /* The data must hold that many numbers before anything is allocated: a tiny request
     * declaring a big shape must not cost a big buffer. */
    Py_buffer view;
    int have_view = 0, integer = 0;
    if (PyList_CheckExact(data)) {
        if (PyList_GET_SIZE(data) != elements)
            Py_RETURN_NONE;
    } else if ((PyObject *)Py_TYPE(data) == ndarray) {
        if (PyObject_GetBuffer(data, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        have_view = 1;
        const char *format = view.format ? view.format : "B";
        integer = strcmp(format, "q") == 0 || strcmp(format, "l") == 0;
        if (view.itemsize != 8 || !(integer || strcmp(format, "d") == 0) ||
            view.len / 8 != elements) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
    } else {
        Py_RETURN_NONE;
    }
    *bytes_left -= elements * itemsize;
    PyObject *buffer = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(elements * itemsize));
    int filled = 0;
    if (buffer != NULL) {
        char *out = PyByteArray_AS_STRING(buffer);
        Kind kind = DATATYPES[which].kind;
        filled = have_view ? fill_buffer(&view, integer, kind, out, (Py_ssize_t)elements)
                           : fill_list(data, kind, out, (Py_ssize_t)elements);
    }
    if (have_view)
        PyBuffer_Release(&view);
    if (buffer == NULL)
        return NULL;
    if (!filled) {
        Py_DECREF(buffer);
        Py_RETURN_NONE;
    }
    PyObject *dims = PyList_AsTuple(shape);
    if (dims == NULL) {
        Py_DECREF(buffer);
        return NULL;
    }
    return Py_BuildValue("(OsNN)", name, DATATYPES[which].code, dims, buffer);
}

static PyObject *decode(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *items, *ndarray;
    long long max_elements, max_bytes;
    if (!PyArg_ParseTuple(args, "OLLO", &items, &max_elements, &max_bytes, &ndarray))
        return NULL;
    if (!PyList_CheckExact(items) || PyList_GET_SIZE(items) == 0 || max_elements < 0 ||
        max_bytes < 0)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *decoded = PyList_New(n);
    if (decoded == NULL)
        return NULL;
    long long bytes_left = max_bytes;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *one =
            decode_item(PyList_GET_ITEM(items, i), ndarray, max_elements, &bytes_left);
        if (one == NULL || one == Py_None) {
            Py_DECREF(decoded);
            return one;
        }
        PyObject *name = PyTuple_GET_ITEM(one, 0);
        for (Py_ssize_t j = 0; j < i; j++) {
            int same = PyUnicode_Compare(PyTuple_GET_ITEM(PyList_GET_ITEM(decoded, j), 0), name);
            if (same == 0) { /* given twice: the general path refuses it */
                Py_DECREF(one);
                Py_DECREF(decoded);
                Py_RETURN_NONE;
            }
        }
        PyList_SET_ITEM(decoded, i, one);
    }
    return decoded;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS,
     "decode(items, max_elements, max_bytes, ndarray) -> None | [(name, code, shape, buffer)]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_v2inputs",
    .m_doc = "Open Inference Protocol inputs in their common form, decoded in one call.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__v2inputs(void) {
    KEY_NAME = PyUnicode_InternFromString("name");
    KEY_DATATYPE = PyUnicode_InternFromString("datatype");
    KEY_SHAPE = PyUnicode_InternFromString("shape");
    KEY_DATA = PyUnicode_InternFromString("data");
    if (!KEY_NAME || !KEY_DATATYPE || !KEY_SHAPE || !KEY_DATA)
        return NULL;
    return PyModule_Create(&module);
}
