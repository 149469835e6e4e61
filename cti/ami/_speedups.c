/*
 * The hot loop of AMI ingest in C: one decoded message ("Key: value" lines
 * separated by CRLF) into a dict. Nothing else lives here; every rule about
 * what a valid message is stays in framing.py, which also holds the pure
 * Python version of this same loop (MessageParser.parse) and uses it when
 * this module is not built. tests/unit/test_ami_speedups.py checks that both
 * give the same result.
 *
 * fill_headers(text, store, known) -> bool
 *   Splits text at CRLF and each line at its first ": ", and stores
 *   key -> value in store (a dict or dict subclass, expected empty).
 *   Returns False, leaving store partly filled, as soon as a line has no
 *   ": ", a key is not in the set known, or a key repeats: the caller then
 *   takes the careful path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
fill_headers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fill_headers(text, store, known) takes 3 arguments");
        return NULL;
    }
    PyObject *text = args[0];
    PyObject *store = args[1];
    PyObject *known = args[2];
    if (!PyAnySet_Check(known)) {
        PyErr_SetString(PyExc_TypeError, "fill_headers: known must be a set");
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "fill_headers: text must be str");
        return NULL;
    }
    if (!PyDict_Check(store)) {
        PyErr_SetString(PyExc_TypeError, "fill_headers: store must be a dict");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    const Py_ssize_t length = PyUnicode_GET_LENGTH(text);

    Py_ssize_t line_start = 0;
    while (line_start <= length) {
        /* The end of this line: the next CRLF, or the end of the text. */
        Py_ssize_t line_end = line_start;
        while (line_end < length) {
            if (PyUnicode_READ(kind, data, line_end) == '\r' && line_end + 1 < length &&
                PyUnicode_READ(kind, data, line_end + 1) == '\n') {
                break;
            }
            line_end++;
        }
        /* The first ": " within the line ("Key: " has an empty value). */
        Py_ssize_t colon = line_start;
        while (colon + 1 < line_end) {
            if (PyUnicode_READ(kind, data, colon) == ':' &&
                PyUnicode_READ(kind, data, colon + 1) == ' ') {
                break;
            }
            colon++;
        }
        if (colon + 1 >= line_end) {
            Py_RETURN_FALSE; /* no ": " (an empty line included): the careful path */
        }
        PyObject *key = PyUnicode_Substring(text, line_start, colon);
        if (key == NULL) {
            return NULL;
        }
        int is_known = PySet_Contains(known, key);
        if (is_known <= 0) {
            Py_DECREF(key);
            if (is_known < 0) {
                return NULL;
            }
            Py_RETURN_FALSE; /* a header name not yet checked valid and canonical */
        }
        PyObject *value = PyUnicode_Substring(text, colon + 2, line_end);
        if (value == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        PyObject *stored = PyDict_SetDefault(store, key, value); /* borrowed */
        Py_DECREF(key);
        Py_DECREF(value);
        if (stored == NULL) {
            return NULL;
        }
        if (stored != value) {
            Py_RETURN_FALSE; /* a repeated header */
        }
        line_start = line_end + 2;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef speedups_methods[] = {
    {"fill_headers", (PyCFunction)(void (*)(void))fill_headers, METH_FASTCALL,
     "fill_headers(text, store, known) -> bool: CRLF 'Key: value' lines into store; "
     "False on a line without ': ', a key not in known, or a repeated key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "cti.ami._speedups",
    "C version of the AMI header loop (see framing.py for the Python one).",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
