/* Numeric JSON arrays parsed straight into machine numbers.
 *
 * A predict body is mostly one big array of numbers. Parsed by a general JSON parser, every
 * number becomes a Python float (allocated, then converted by numpy, then freed): under load
 * that is the largest cost of a request. extract() finds the arrays that are object member
 * values and hold only numbers in a rectangular nesting, parses them into int64 or float64
 * buffers, and returns the document with each such array replaced by the JSON string
 * "\u0000<index>". A general parser then reads the small remainder. The values are those a
 * general parser gives: integers stay integers (int64) unless a float is among them, floats
 * are correctly rounded. Anything unusual (an empty or ragged array, an integer beyond int64,
 * a number beyond double) is left in the document for the general parser to handle or refuse.
 *
 * extract(body, min_numbers, keys, release=False)
 *     -> None | (skeleton: bytes, [(is_int, shape, buffer)])
 *   min_numbers: smaller arrays stay in the document;
 *   keys: None, or a tuple of bytes: only arrays under these (unescaped) member names;
 *   release: scan the numbers without the GIL (taking it back only to grow a buffer), so that
 *     a big body parsed on a worker thread leaves the event loop free. Not worth the
 *     hand-overs for a small body parsed inline.
 * None: nothing was extracted, or the body holds the text \u0000, which a placeholder could
 * be confused with.
 *
 * to_float32(buffer of int64 or float64) -> bytearray of float32: the cast most models need,
 * done without releasing the GIL. numpy releases it for casts of more than 500 elements, and
 * on the event loop getting it back from the batch threads costs far more than the cast.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMS 32
#define MAX_SIGNIFICANT 19 /* decimal digits that always fit a uint64 */

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef union {
    int64_t i;
    double d;
} Number;

typedef struct {
    const char *p;
    const char *end;
    int ndim; /* -1 until the first number fixes the depth of the leaves */
    Py_ssize_t shape[MAX_DIMS];
    int all_int; /* values are int64 until the first float turns them all into doubles */
    Py_ssize_t count;
    Py_ssize_t capacity;
    PyObject *values; /* bytearray of `capacity` Numbers: becomes the result without a copy */
    PyThreadState *released; /* set while the numbers are scanned without the GIL */
} Parse;

/* Around the few Python calls made while scanning: take the GIL back if it was released. */
static void hold_gil(Parse *a) {
    if (a->released)
        PyEval_RestoreThread(a->released);
}

static void release_gil(Parse *a) {
    if (a->released)
        a->released = PyEval_SaveThread();
}

/* Result of the parse steps: */
#define TAKEN 1
#define LEFT 0     /* not a number / not a regular numeric array: leave it in the document */
#define FAILED -1  /* a Python exception is set */

static void skip_ws(Parse *a) {
    while (a->p < a->end &&
           (*a->p == ' ' || *a->p == '\t' || *a->p == '\n' || *a->p == '\r'))
        a->p++;
}

static int grow(Parse *a) {
    Py_ssize_t capacity = a->capacity ? a->capacity * 2 : 1024;
    int result = FAILED; /* an exception set on this thread's state outlives the release */
    hold_gil(a);
    if (a->values == NULL)
        a->values = PyByteArray_FromStringAndSize(NULL, capacity * (Py_ssize_t)sizeof(Number));
    else if (PyByteArray_Resize(a->values, capacity * (Py_ssize_t)sizeof(Number)) < 0)
        goto done;
    if (a->values == NULL)
        goto done;
    a->capacity = capacity;
    result = TAKEN;
done:
    release_gil(a);
    return result;
}

static Number *values(const Parse *a) { return (Number *)PyByteArray_AS_STRING(a->values); }

#define DIGIT(q) ((q) < end && *(q) >= '0' && *(q) <= '9')

/* One JSON number (RFC 8259 grammar) at a->p. Works on a local pointer: stores through
 * a->p would be reloaded after every character read, since chars may alias anything. */
static int parse_number(Parse *a) {
    const char *p = a->p, *end = a->end;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    const char *digits = p;
    if (!DIGIT(p))
        return LEFT;
    uint64_t mantissa = 0;
    int significant = 0, dropped = 0, scale = 0; /* value = mantissa * 10^(scale + exponent) */
    if (*p == '0') {
        p++; /* a leading zero stands alone */
    } else {
        for (; DIGIT(p); p++) {
            if (significant < MAX_SIGNIFICANT) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                significant++;
            } else {
                dropped = 1;
                scale++;
            }
        }
    }
    int integer = 1;
    if (p < end && *p == '.') {
        integer = 0;
        p++;
        if (!DIGIT(p))
            return LEFT;
        for (; DIGIT(p); p++) {
            int digit = *p - '0';
            if (mantissa == 0 && digit == 0) {
                scale--; /* a zero before the first significant digit */
            } else if (significant < MAX_SIGNIFICANT) {
                mantissa = mantissa * 10 + (uint64_t)digit;
                significant++;
                scale--;
            } else {
                dropped = 1;
            }
        }
    }
    int exponent = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = 0;
        p++;
        int exponent_negative = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            exponent_negative = *p == '-';
            p++;
        }
        if (!DIGIT(p))
            return LEFT;
        for (; DIGIT(p); p++) {
            if (exponent < 100000) /* far past any double; the slow path does the rest */
                exponent = exponent * 10 + (*p - '0');
        }
        if (exponent_negative)
            exponent = -exponent;
    }
    if (a->count == a->capacity && grow(a) == FAILED)
        return FAILED;
    Number *out = values(a);
    if (integer) {
        /* More than 19 digits is beyond int64; so is a 19-digit value past its range. */
        if (dropped || mantissa > (uint64_t)INT64_MAX + (uint64_t)negative)
            return LEFT;
        int64_t value = negative ? (int64_t)(0 - mantissa) : (int64_t)mantissa;
        if (a->all_int)
            out[a->count].i = value;
        else
            out[a->count].d = (double)value;
        a->count++;
        a->p = p;
        return TAKEN;
    }
    int power = scale + exponent;
    double value;
    if (mantissa == 0 && !dropped) {
        value = 0.0;
    } else if (!dropped && mantissa <= (UINT64_C(1) << 53) && power >= -22 && power <= 22) {
        /* Both factors are exact doubles, so one IEEE operation rounds correctly (Clinger). */
        value = (double)mantissa;
        value = power < 0 ? value / POW10[-power] : value * POW10[power];
    } else {
        /* More than 2^53 or past 10^22: the C library's strtod, correctly rounded (glibc and
         * musl both are) and without the GIL, where PyOS_string_to_double needs it: a body of
         * 17-digit floats (Python's repr of float32 values, as tritonclient sends them) took
         * the GIL back for every number. A locale whose decimal point is not '.' stops strtod
         * early: the array is then left to the general parser. */
        char *stop = NULL;
        value = strtod(digits, &stop);
        if (stop != p || Py_IS_INFINITY(value))
            return LEFT; /* out of double's range: the general parser refuses it */
    }
    if (a->all_int) { /* the first float: the integers so far become doubles, in place */
        for (Py_ssize_t i = 0; i < a->count; i++)
            out[i].d = (double)out[i].i;
        a->all_int = 0;
    }
    out[a->count].d = negative ? -value : value;
    a->count++;
    a->p = p;
    return TAKEN;
}

/* The array at a->p (on its '['), at nesting depth `depth`. */
static int parse_array(Parse *a, int depth) {
    if (depth >= MAX_DIMS)
        return LEFT;
    a->p++;
    skip_ws(a);
    if (a->p < a->end && *a->p == ']')
        return LEFT; /* empty: its shape is the general parser's business */
    Py_ssize_t length = 0;
    for (;;) {
        if (a->p >= a->end)
            return LEFT;
        int result;
        if (*a->p == '[') {
            if (a->ndim != -1 && depth + 1 >= a->ndim)
                return LEFT; /* an array where numbers were */
            result = parse_array(a, depth + 1);
        } else {
            if (a->ndim == -1)
                a->ndim = depth + 1;
            else if (a->ndim != depth + 1)
                return LEFT; /* a number where arrays were */
            result = parse_number(a);
        }
        if (result != TAKEN)
            return result;
        length++;
        skip_ws(a);
        if (a->p >= a->end)
            return LEFT;
        if (*a->p == ']') {
            a->p++;
            break;
        }
        if (*a->p != ',')
            return LEFT;
        a->p++;
        skip_ws(a);
    }
    if (a->shape[depth] == -1)
        a->shape[depth] = length;
    else if (a->shape[depth] != length)
        return LEFT; /* ragged */
    return TAKEN;
}

/* The parsed array as (is_int, shape, bytearray of int64 or float64 values); the bytearray
 * goes with it, so the next array starts a new one. */
static PyObject *array_tuple(Parse *a) {
    PyObject *shape = PyTuple_New(a->ndim);
    if (shape == NULL)
        return NULL;
    for (int i = 0; i < a->ndim; i++) {
        PyObject *dim = PyLong_FromSsize_t(a->shape[i]);
        if (dim == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, i, dim);
    }
    PyObject *buffer = a->values;
    a->values = NULL;
    a->capacity = 0;
    if (PyByteArray_Resize(buffer, a->count * (Py_ssize_t)sizeof(Number)) < 0) {
        Py_DECREF(buffer);
        Py_DECREF(shape);
        return NULL;
    }
    return Py_BuildValue("(ONN)", a->all_int ? Py_True : Py_False, shape, buffer);
}

static int key_allowed(PyObject *keys, const char *key, Py_ssize_t length) {
    if (keys == Py_None)
        return 1;
    Py_ssize_t n = PyTuple_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *allowed = PyTuple_GET_ITEM(keys, i);
        if (PyBytes_GET_SIZE(allowed) == length &&
            memcmp(PyBytes_AS_STRING(allowed), key, (size_t)length) == 0)
            return 1;
    }
    return 0;
}

typedef struct {
    char *data;
    Py_ssize_t length;
    Py_ssize_t capacity;
} Text;

static int append(Text *text, const char *data, Py_ssize_t length) {
    if (text->length + length > text->capacity) {
        Py_ssize_t capacity = (text->length + length) * 2 + 64;
        char *grown = PyMem_Realloc(text->data, (size_t)capacity);
        if (grown == NULL) {
            PyErr_NoMemory();
            return FAILED;
        }
        text->data = grown;
        text->capacity = capacity;
    }
    memcpy(text->data + text->length, data, (size_t)length);
    text->length += length;
    return TAKEN;
}

static PyObject *extract(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t min_numbers;
    PyObject *keys;
    int release = 0;
    if (!PyArg_ParseTuple(args, "y*nO|p", &view, &min_numbers, &keys, &release))
        return NULL;
    if (keys != Py_None) {
        int ok = PyTuple_Check(keys);
        for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(keys); i++)
            ok = PyBytes_Check(PyTuple_GET_ITEM(keys, i));
        if (!ok) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_TypeError, "keys must be None or a tuple of bytes");
            return NULL;
        }
    }
    const char *body = view.buf, *end = body + view.len;
    Parse a = {0};
    Text skeleton = {0};
    PyObject *arrays = PyList_New(0);
    PyObject *result = NULL;
    if (arrays == NULL)
        goto done;
    const char *p = body, *copied = body, *key = NULL;
    Py_ssize_t key_length = 0;
    char previous = 0; /* the last character outside strings and whitespace */
    while (p < end) {
        char c = *p;
        if (c == '"') {
            const char *s = ++p;
            while (p < end && *p != '"') {
                if (*p == '\\') {
                    if (end - p >= 6 && memcmp(p, "\\u0000", 6) == 0)
                        goto nothing; /* a placeholder could be taken for this string */
                    p++;
                }
                p++;
            }
            if (p > end)
                p = end;
            key = s;
            key_length = p - s;
            p++;
            previous = '"';
            continue;
        }
        if (c == '[' && previous == ':' && key_allowed(keys, key, key_length)) {
            a.p = p;
            a.end = end;
            a.ndim = -1;
            for (int i = 0; i < MAX_DIMS; i++)
                a.shape[i] = -1;
            a.all_int = 1;
            a.count = 0;
            if (release)
                a.released = PyEval_SaveThread();
            int parsed = parse_array(&a, 0);
            if (a.released) {
                PyEval_RestoreThread(a.released);
                a.released = NULL;
            }
            if (parsed == FAILED)
                goto done;
            if (parsed == TAKEN && a.count >= min_numbers) {
                char placeholder[32];
                int n = PyOS_snprintf(placeholder, sizeof placeholder, "\"\\u0000%zd\"",
                                      PyList_GET_SIZE(arrays));
                PyObject *array = array_tuple(&a);
                if (array == NULL)
                    goto done;
                int appended = PyList_Append(arrays, array);
                Py_DECREF(array);
                if (appended < 0 || append(&skeleton, copied, p - copied) == FAILED ||
                    append(&skeleton, placeholder, n) == FAILED)
                    goto done;
                p = copied = a.p;
                previous = ']';
                continue;
            }
        }
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            previous = c;
        p++;
    }
    if (PyList_GET_SIZE(arrays) == 0)
        goto nothing;
    if (append(&skeleton, copied, end - copied) == FAILED)
        goto done;
    result = Py_BuildValue("(y#O)", skeleton.data, skeleton.length, arrays);
    goto done;
nothing:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(arrays);
    PyMem_Free(skeleton.data);
    Py_XDECREF(a.values);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *to_float32(PyObject *self, PyObject *source) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(source, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const char *format = view.format ? view.format : "B";
    int integer = strcmp(format, "q") == 0 || strcmp(format, "l") == 0;
    if (view.itemsize != 8 || !(integer || strcmp(format, "d") == 0)) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_TypeError, "to_float32 takes int64 or float64 values, not %s",
                     format);
        return NULL;
    }
    Py_ssize_t n = view.len / 8;
    PyObject *result = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(float));
    if (result != NULL) {
        float *out = (float *)PyByteArray_AS_STRING(result);
        if (integer) {
            const int64_t *in = view.buf;
            for (Py_ssize_t i = 0; i < n; i++)
                out[i] = (float)in[i];
        } else {
            const double *in = view.buf;
            for (Py_ssize_t i = 0; i < n; i++)
                out[i] = (float)in[i];
        }
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"extract", extract, METH_VARARGS,
     "extract(body, min_numbers, keys) -> None | (skeleton, [(is_int, shape, buffer)])"},
    {"to_float32", to_float32, METH_O, "to_float32(int64 or float64 buffer) -> bytearray"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_jsonarrays",
    .m_doc = "Numeric JSON arrays parsed into buffers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__jsonarrays(void) { return PyModule_Create(&module); }
