/*
 * The hot loop of AMI ingest in C: a read's complete messages, still UTF-8
 * bytes, split, filtered, parsed and sorted in one call. Nothing else lives
 * here: every rule about what a valid message is stays in framing.py, whose
 * MessageParser holds the same loop in Python and uses it when this module is
 * not built (or the link's encoding is not UTF-8).
 * tests/unit/test_ami_fast_path.py checks that both give the same results.
 *
 * split_utf8_region(raw, known, wanted, cls) -> (events, others, filtered)
 *   raw: complete messages separated by CRLF CRLF. Events whose name is not
 *   in the frozenset wanted (None: no filter) and that carry no ActionID are
 *   counted in filtered and not parsed. Every other message is parsed into a
 *   new cls (a dict subclass): "Key: value" lines, split at the first ": ",
 *   keys taken from the dict known (header names already checked valid and
 *   canonical, each mapped to itself), values decoded with errors replaced.
 *   A message with a line that is not "Key: value", a key not in known, a
 *   repeated key, a Result header (the careful path unquotes it), or neither
 *   Event nor Response is passed on as its decoded text instead. events holds
 *   the plain events (Event, no ActionID, not FullyBooted) in order; others
 *   holds (number of events before it, message or text) for the rest, in
 *   order. Separators are found with memchr/memmem and keys compared in
 *   place, so only values are decoded.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem */
#include <Python.h>
#include <string.h>

static PyObject *s_event;        /* "Event" */
static PyObject *s_response;     /* "Response" */
static PyObject *s_action_id;    /* "ActionID" */
static PyObject *s_result;       /* "Result" */
static PyObject *s_fully_booted; /* "FullyBooted" */
static PyObject *s_empty_tuple;

/*
 * The known header names, bucketed by length and first character, so that a
 * line's key is found by comparing characters in place instead of building a
 * str object to look it up (most of a message's allocations otherwise).
 */
#define KEY_BUCKETS 256
#define KEY_SLOTS 512

typedef struct {
    PyObject *key[KEY_SLOTS]; /* strong references, for the length of one call */
    int next[KEY_SLOTS];
    int head[KEY_BUCKETS];
    int used;
} KeyTable;

static int
bucket_of(Py_ssize_t length, Py_UCS4 first)
{
    return (int)(((Py_ssize_t)first * 31 + length) & (KEY_BUCKETS - 1));
}

static void
key_table_build(KeyTable *table, PyObject *known)
{
    for (int i = 0; i < KEY_BUCKETS; i++) {
        table->head[i] = -1;
    }
    table->used = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (table->used < KEY_SLOTS && PyDict_Next(known, &pos, &key, &value)) {
        if (!PyUnicode_Check(value) || PyUnicode_READY(value) < 0 ||
            PyUnicode_GET_LENGTH(value) == 0) {
            PyErr_Clear();
            continue;
        }
        int b = bucket_of(PyUnicode_GET_LENGTH(value), PyUnicode_READ_CHAR(value, 0));
        Py_INCREF(value);
        table->key[table->used] = value;
        table->next[table->used] = table->head[b];
        table->head[b] = table->used;
        table->used++;
    }
}

static void
key_table_free(KeyTable *table)
{
    if (table == NULL) {
        return;
    }
    for (int i = 0; i < table->used; i++) {
        Py_DECREF(table->key[i]);
    }
    PyMem_Free(table);
}

/* The known key whose ASCII text is raw[0:length], borrowed from the table. */
static PyObject *
key_table_find_bytes(const KeyTable *table, const char *raw, Py_ssize_t length)
{
    if (length <= 0) {
        return NULL;
    }
    int slot = table->head[bucket_of(length, (unsigned char)raw[0])];
    for (; slot >= 0; slot = table->next[slot]) {
        PyObject *key = table->key[slot];
        if (PyUnicode_GET_LENGTH(key) == length && PyUnicode_IS_ASCII(key) &&
            memcmp(PyUnicode_1BYTE_DATA(key), raw, (size_t)length) == 0) {
            return key;
        }
    }
    return NULL;
}

/* Next CRLF in [p, end), or end. */
static const char *
next_crlf(const char *p, const char *end)
{
    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (cr == NULL || cr + 1 >= end) {
            return end;
        }
        if (cr[1] == '\n') {
            return cr;
        }
        p = cr + 1;
    }
    return end;
}

/* Next CRLF CRLF in [p, end), or end. */
static const char *
next_blank_line(const char *p, const char *end)
{
    const char *found = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    return found == NULL ? end : found;
}

/*
 * Short ASCII values seen earlier in the same region (Privilege, SystemName,
 * ChannelStateDesc, Context, "<unknown>"...) are shared instead of decoded
 * again: most of a message's values repeat from message to message.
 */
#define VALUE_SLOTS 1024
#define VALUE_MAX 32

typedef struct {
    PyObject *value[VALUE_SLOTS]; /* strong references, for one call */
} ValueCache;

static void
value_cache_free(ValueCache *cache)
{
    if (cache == NULL) {
        return;
    }
    for (int i = 0; i < VALUE_SLOTS; i++) {
        Py_XDECREF(cache->value[i]);
    }
    PyMem_Free(cache);
}

/* A str for raw[0:length] (UTF-8, errors replaced); a new reference. */
static PyObject *
value_for(ValueCache *cache, const char *raw, Py_ssize_t length)
{
    if (cache == NULL || length > VALUE_MAX) {
        return PyUnicode_DecodeUTF8(raw, length, "replace");
    }
    uint32_t hash = 2166136261u;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c >= 0x80) {
            return PyUnicode_DecodeUTF8(raw, length, "replace");
        }
        hash = (hash ^ c) * 16777619u;
    }
    int slot = (int)(hash & (VALUE_SLOTS - 1));
    PyObject *cached = cache->value[slot];
    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == length &&
        memcmp(PyUnicode_1BYTE_DATA(cached), raw, (size_t)length) == 0) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *value = PyUnicode_DecodeUTF8(raw, length, "replace");
    if (value != NULL) {
        Py_INCREF(value);
        Py_XSETREF(cache->value[slot], value);
    }
    return value;
}

/* The lines of one message [p, end) into store. 1: done; 0: refused; -1: error. */
static int
fill_bytes(const char *p, const char *end, PyObject *store, const KeyTable *table,
           ValueCache *values)
{
    const char *line = p;
    for (;;) {
        const char *line_end = next_crlf(line, end);
        /* The first ": " within the line. */
        const char *colon = line;
        for (;;) {
            colon = memchr(colon, ':', (size_t)(line_end - colon));
            if (colon == NULL || colon + 1 >= line_end) {
                return 0; /* no ": " (an empty line included) */
            }
            if (colon[1] == ' ') {
                break;
            }
            colon++;
        }
        PyObject *key = key_table_find_bytes(table, line, colon - line); /* borrowed */
        if (key == NULL) {
            return 0; /* a name not yet checked (or not ASCII) */
        }
        PyObject *value = value_for(values, colon + 2, line_end - (colon + 2));
        if (value == NULL) {
            return -1;
        }
        /* A repeat is spotted by PyDict_Contains: with shared values, the
           value SetDefault returns may be this very object for a repeat. */
        int seen = PyDict_Contains(store, key);
        if (seen != 0) {
            Py_DECREF(value);
            return seen < 0 ? -1 : 0; /* a repeated header */
        }
        int failed = PyDict_SetItem(store, key, value);
        Py_DECREF(value);
        if (failed) {
            return -1;
        }
        if (line_end >= end) {
            return 1;
        }
        line = line_end + 2;
    }
}

/* Append (position, item) to others; steals nothing. 0 ok, -1 error. */
static int
add_other(PyObject *others, Py_ssize_t position, PyObject *item)
{
    PyObject *pair = Py_BuildValue("(nO)", position, item);
    if (pair == NULL) {
        return -1;
    }
    int failed = PyList_Append(others, pair);
    Py_DECREF(pair);
    return failed;
}

/*
 * Sort a message the header loop filled (done: 1) or refused (0): a plain
 * event goes to events, a reply, list item or FullyBooted to others. Returns
 * 1 when sorted, 0 when the careful path must have it (refused, no Event nor
 * Response, or a Result to unquote), -1 on error. Always releases message.
 */
static int
sort_message(PyObject *message, int done, PyObject *events, PyObject *others)
{
    int sorted = -1;
    PyObject *event = NULL;
    if (!done) {
        sorted = 0;
        goto out;
    }
    event = PyDict_GetItemWithError(message, s_event); /* borrowed */
    if (event == NULL && PyErr_Occurred()) {
        goto out;
    }
    int has_response = PyDict_Contains(message, s_response);
    int has_result = PyDict_Contains(message, s_result);
    int has_action = PyDict_Contains(message, s_action_id);
    if (has_response < 0 || has_result < 0 || has_action < 0) {
        goto out;
    }
    if ((event == NULL && !has_response) || has_result) {
        sorted = 0;
        goto out;
    }
    int booted = event != NULL && PyUnicode_Check(event) &&
                 PyUnicode_Compare(event, s_fully_booted) == 0;
    int failed = event != NULL && !has_action && !booted
                     ? PyList_Append(events, message)
                     : add_other(others, PyList_GET_SIZE(events), message);
    sorted = failed ? -1 : 1;
out:
    Py_DECREF(message);
    return sorted;
}

static int
take_bytes_message(const char *p, const char *end, const KeyTable *table, ValueCache *values,
                   PyTypeObject *cls, PyObject *events, PyObject *others)
{
    PyObject *message = PyDict_Type.tp_new(cls, s_empty_tuple, NULL);
    if (message == NULL) {
        return -1;
    }
    int done = fill_bytes(p, end, message, table, values);
    if (done < 0) {
        Py_DECREF(message);
        return -1;
    }
    int sorted = sort_message(message, done, events, others);
    if (sorted != 0) {
        return sorted < 0 ? -1 : 0;
    }
    PyObject *part = PyUnicode_DecodeUTF8(p, end - p, "replace");
    if (part == NULL) {
        return -1;
    }
    int failed = add_other(others, PyList_GET_SIZE(events), part);
    Py_DECREF(part);
    return failed;
}

/* 1 when the event [p, end) is outside wanted and answers no action. */
static int
unwanted_bytes(const char *p, const char *end, PyObject *wanted)
{
    if (end - p < 7 || memcmp(p, "Event: ", 7) != 0) {
        return 0;
    }
    const char *name_end = next_crlf(p + 7, end);
    PyObject *name = PyUnicode_DecodeUTF8(p + 7, name_end - (p + 7), "replace");
    if (name == NULL) {
        return -1;
    }
    int is_wanted = PySet_Contains(wanted, name);
    Py_DECREF(name);
    if (is_wanted != 0) {
        return is_wanted < 0 ? -1 : 0;
    }
    return memmem(p, (size_t)(end - p), "\r\nActionID: ", 12) == NULL;
}

static PyObject *
split_utf8_region(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "split_utf8_region(raw, known, wanted, cls) takes 4 arguments");
        return NULL;
    }
    PyObject *raw = args[0], *known = args[1], *wanted = args[2], *cls = args[3];
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "raw must be bytes");
        return NULL;
    }
    if (!PyDict_Check(known)) {
        PyErr_SetString(PyExc_TypeError, "known must be a dict");
        return NULL;
    }
    if (wanted != Py_None && !PyAnySet_Check(wanted)) {
        PyErr_SetString(PyExc_TypeError, "wanted must be a set or None");
        return NULL;
    }
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a dict subclass");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(raw);
    const char *end = p + PyBytes_GET_SIZE(raw);
    PyObject *events = PyList_New(0);
    PyObject *others = PyList_New(0);
    Py_ssize_t filtered = 0;
    KeyTable *table = NULL;
    ValueCache *values = NULL;
    if (events == NULL || others == NULL) {
        goto error;
    }
    table = PyMem_Malloc(sizeof(KeyTable));
    values = PyMem_Calloc(1, sizeof(ValueCache));
    if (table == NULL || values == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    table->used = 0;
    key_table_build(table, known);
    while (p < end) {
        if (*p == '\r' || *p == '\n') { /* extra blank lines are not messages */
            p++;
            continue;
        }
        const char *block_end = next_blank_line(p, end);
        if (wanted != Py_None) {
            int skip = unwanted_bytes(p, block_end, wanted);
            if (skip < 0) {
                goto error;
            }
            if (skip) {
                filtered++;
                p = block_end + 4;
                continue;
            }
        }
        if (take_bytes_message(p, block_end, table, values, (PyTypeObject *)cls, events,
                               others) < 0) {
            goto error;
        }
        p = block_end + 4;
    }
    key_table_free(table);
    value_cache_free(values);
    return Py_BuildValue("(NNn)", events, others, filtered);

error:
    key_table_free(table);
    value_cache_free(values);
    Py_XDECREF(events);
    Py_XDECREF(others);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"split_utf8_region", (PyCFunction)(void (*)(void))split_utf8_region, METH_FASTCALL,
     "split_utf8_region(raw, known, wanted, cls) -> (events, others, filtered): the "
     "messages of a read, filtered, parsed and sorted (see the module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "cti.ami._speedups",
    "C version of the AMI region splitter (see framing.py for the Python one).",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    s_event = PyUnicode_InternFromString("Event");
    s_response = PyUnicode_InternFromString("Response");
    s_action_id = PyUnicode_InternFromString("ActionID");
    s_result = PyUnicode_InternFromString("Result");
    s_fully_booted = PyUnicode_InternFromString("FullyBooted");
    s_empty_tuple = PyTuple_New(0);
    if (s_event == NULL || s_response == NULL || s_action_id == NULL || s_result == NULL ||
        s_fully_booted == NULL || s_empty_tuple == NULL) {
        return NULL;
    }
    return PyModule_Create(&speedups_module);
}
