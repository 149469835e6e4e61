/*
 * The hot loop of AMI ingest in C. Nothing else lives here: every rule about
 * what a valid message is stays in framing.py, which also holds the pure
 * Python version of both functions (MessageParser.parse and
 * MessageParser.split_region) and uses it when this module is not built.
 * tests/unit/test_ami_fast_path.py checks that both give the same results.
 *
 * fill_headers(text, store, known) -> bool
 *   One decoded message ("Key: value" lines separated by CRLF) into store
 *   (a dict or dict subclass, expected empty). Returns False, leaving store
 *   partly filled, as soon as a line has no ": ", a key is not in the dict
 *   known (header names already checked valid and canonical, each mapped to
 *   itself) or a key repeats: the caller then takes the careful path. Keys
 *   are stored as the objects held in known.
 *
 * split_utf8_region(raw, known, wanted, cls) -> (events, others, filtered)
 *   The same as split_region on raw.decode("utf-8", "replace"), working on
 *   the bytes: separators are found with memchr/memmem, keys are compared
 *   in place, and only values are decoded (a region of ASCII messages with a
 *   few Chinese names is then not processed as two-byte text throughout).
 *
 * split_region(text, known, wanted, cls) -> (events, others, filtered)
 *   A decoded run of complete messages separated by CRLF CRLF. Events whose
 *   name is not in the frozenset wanted (None: no filter) and that carry no
 *   ActionID are counted in filtered and not parsed. Every other message is
 *   parsed into a new cls (a dict subclass) as fill_headers does; a message
 *   that fill_headers would refuse, or that has a Result header (unquoted by
 *   the careful path), is passed on as its text. events holds the plain
 *   events (Event, no ActionID, not FullyBooted) in order; others holds
 *   (number of events before it, message or text) for the rest, in order.
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
static PyObject *s_action_line;  /* "\r\nActionID: " */
static PyObject *s_empty_tuple;

/* Index of the next CRLF at or after start, or end. */
static Py_ssize_t
find_crlf(int kind, const void *data, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t i = start; i + 1 < end; i++) {
        if (PyUnicode_READ(kind, data, i) == '\r' && PyUnicode_READ(kind, data, i + 1) == '\n') {
            return i;
        }
    }
    return end;
}

/* Index of the next CRLF CRLF at or after start, or end. */
static Py_ssize_t
find_blank_line(int kind, const void *data, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t i = start; i + 3 < end; i++) {
        if (PyUnicode_READ(kind, data, i) == '\r' && PyUnicode_READ(kind, data, i + 1) == '\n' &&
            PyUnicode_READ(kind, data, i + 2) == '\r' && PyUnicode_READ(kind, data, i + 3) == '\n') {
            return i;
        }
    }
    return end;
}

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

/* The known key equal to text[start:end], borrowed from the table; NULL if none. */
static PyObject *
key_table_find(const KeyTable *table, int kind, const void *data, Py_ssize_t start,
               Py_ssize_t end)
{
    Py_ssize_t length = end - start;
    if (length <= 0) {
        return NULL;
    }
    int slot = table->head[bucket_of(length, PyUnicode_READ(kind, data, start))];
    for (; slot >= 0; slot = table->next[slot]) {
        PyObject *key = table->key[slot];
        if (PyUnicode_GET_LENGTH(key) != length) {
            continue;
        }
        int key_kind = PyUnicode_KIND(key);
        const void *key_data = PyUnicode_DATA(key);
        Py_ssize_t i = 0;
        while (i < length &&
               PyUnicode_READ(key_kind, key_data, i) == PyUnicode_READ(kind, data, start + i)) {
            i++;
        }
        if (i == length) {
            return key;
        }
    }
    return NULL;
}

/* The lines of text[start:end] into store. 1: done; 0: refused; -1: error.
   With a key table, keys are matched in place; without one, looked up in known. */
static int
fill_range(PyObject *text, int kind, const void *data, Py_ssize_t start, Py_ssize_t end,
           PyObject *store, PyObject *known, const KeyTable *table)
{
    Py_ssize_t line_start = start;
    while (line_start <= end) {
        Py_ssize_t line_end = find_crlf(kind, data, line_start, end);
        Py_ssize_t colon = line_start;
        while (colon + 1 < line_end) {
            if (PyUnicode_READ(kind, data, colon) == ':' &&
                PyUnicode_READ(kind, data, colon + 1) == ' ') {
                break;
            }
            colon++;
        }
        if (colon + 1 >= line_end) {
            return 0; /* no ": " (an empty line included) */
        }
        PyObject *key; /* borrowed */
        if (table != NULL) {
            key = key_table_find(table, kind, data, line_start, colon);
            if (key == NULL) {
                return 0; /* a name not yet checked */
            }
        }
        else {
            PyObject *raw_key = PyUnicode_Substring(text, line_start, colon);
            if (raw_key == NULL) {
                return -1;
            }
            key = PyDict_GetItemWithError(known, raw_key);
            Py_DECREF(raw_key);
            if (key == NULL) {
                return PyErr_Occurred() ? -1 : 0; /* a name not yet checked */
            }
        }
        PyObject *value = PyUnicode_Substring(text, colon + 2, line_end);
        if (value == NULL) {
            return -1;
        }
        PyObject *stored = PyDict_SetDefault(store, key, value); /* borrowed */
        Py_DECREF(value);
        if (stored == NULL) {
            return -1;
        }
        if (stored != value) {
            return 0; /* a repeated header */
        }
        line_start = line_end + 2;
    }
    return 1;
}

static int
check_args(PyObject *text, PyObject *known)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be str");
        return -1;
    }
    if (!PyDict_Check(known)) {
        PyErr_SetString(PyExc_TypeError, "known must be a dict");
        return -1;
    }
    return PyUnicode_READY(text);
}

static PyObject *
fill_headers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fill_headers(text, store, known) takes 3 arguments");
        return NULL;
    }
    PyObject *text = args[0], *store = args[1], *known = args[2];
    if (check_args(text, known) < 0) {
        return NULL;
    }
    if (!PyDict_Check(store)) {
        PyErr_SetString(PyExc_TypeError, "store must be a dict");
        return NULL;
    }
    int done = fill_range(text, PyUnicode_KIND(text), PyUnicode_DATA(text), 0,
                          PyUnicode_GET_LENGTH(text), store, known, NULL);
    if (done < 0) {
        return NULL;
    }
    return PyBool_FromLong(done);
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

/* One message of the region: parsed and sorted, or passed on as text. */
static int
take_message(PyObject *text, int kind, const void *data, Py_ssize_t start, Py_ssize_t end,
             PyObject *known, const KeyTable *table, PyTypeObject *cls, PyObject *events,
             PyObject *others)
{
    PyObject *message = PyDict_Type.tp_new(cls, s_empty_tuple, NULL);
    if (message == NULL) {
        return -1;
    }
    int done = fill_range(text, kind, data, start, end, message, known, table);
    if (done < 0) {
        Py_DECREF(message);
        return -1;
    }
    PyObject *event = NULL;
    if (done) {
        event = PyDict_GetItemWithError(message, s_event); /* borrowed */
        if (event == NULL && PyErr_Occurred()) {
            Py_DECREF(message);
            return -1;
        }
        int has_response = PyDict_Contains(message, s_response);
        int has_result = PyDict_Contains(message, s_result);
        if (has_response < 0 || has_result < 0) {
            Py_DECREF(message);
            return -1;
        }
        /* Malformed (no Event, no Response) and Result: the careful path. */
        done = (event != NULL || has_response) && !has_result;
    }
    int failed;
    if (!done) {
        Py_DECREF(message);
        PyObject *part = PyUnicode_Substring(text, start, end);
        if (part == NULL) {
            return -1;
        }
        failed = add_other(others, PyList_GET_SIZE(events), part);
        Py_DECREF(part);
        return failed;
    }
    int has_action = PyDict_Contains(message, s_action_id);
    if (has_action < 0) {
        Py_DECREF(message);
        return -1;
    }
    int booted = 0;
    if (event != NULL) {
        booted = PyUnicode_Check(event) && PyUnicode_Compare(event, s_fully_booted) == 0;
    }
    if (event != NULL && !has_action && !booted) {
        failed = PyList_Append(events, message);
    }
    else {
        failed = add_other(others, PyList_GET_SIZE(events), message);
    }
    Py_DECREF(message);
    return failed;
}

/* True when the event starting at start is outside wanted and answers no action. */
static int
unwanted(PyObject *text, int kind, const void *data, Py_ssize_t start, Py_ssize_t end,
         PyObject *wanted)
{
    static const char prefix[] = "Event: ";
    const Py_ssize_t prefix_length = 7;
    if (end - start < prefix_length) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < prefix_length; i++) {
        if (PyUnicode_READ(kind, data, start + i) != (Py_UCS4)prefix[i]) {
            return 0;
        }
    }
    Py_ssize_t name_end = find_crlf(kind, data, start + prefix_length, end);
    PyObject *name = PyUnicode_Substring(text, start + prefix_length, name_end);
    if (name == NULL) {
        return -1;
    }
    int is_wanted = PySet_Contains(wanted, name);
    Py_DECREF(name);
    if (is_wanted != 0) {
        return is_wanted < 0 ? -1 : 0;
    }
    Py_ssize_t found = PyUnicode_Find(text, s_action_line, start, end, 1);
    if (found == -2) {
        return -1;
    }
    return found == -1;
}

static PyObject *
split_region(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "split_region(text, known, wanted, cls) takes 4 arguments");
        return NULL;
    }
    PyObject *text = args[0], *known = args[1], *wanted = args[2], *cls = args[3];
    if (check_args(text, known) < 0) {
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
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    const Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    PyObject *events = PyList_New(0);
    PyObject *others = PyList_New(0);
    Py_ssize_t filtered = 0;
    KeyTable *table = NULL;
    if (events == NULL || others == NULL) {
        goto error;
    }
    table = PyMem_Malloc(sizeof(KeyTable));
    if (table == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    table->used = 0;
    key_table_build(table, known);
    Py_ssize_t position = 0;
    while (position < length) {
        /* Extra blank lines between messages are not messages. */
        Py_UCS4 c = PyUnicode_READ(kind, data, position);
        if (c == '\r' || c == '\n') {
            position++;
            continue;
        }
        Py_ssize_t end = find_blank_line(kind, data, position, length);
        if (wanted != Py_None) {
            int skip = unwanted(text, kind, data, position, end, wanted);
            if (skip < 0) {
                goto error;
            }
            if (skip) {
                filtered++;
                position = end + 4;
                continue;
            }
        }
        if (take_message(text, kind, data, position, end, known, table, (PyTypeObject *)cls,
                         events, others) < 0) {
            goto error;
        }
        position = end + 4;
    }
    key_table_free(table);
    return Py_BuildValue("(NNn)", events, others, filtered);

error:
    key_table_free(table);
    Py_XDECREF(events);
    Py_XDECREF(others);
    return NULL;
}

/* ---- the same on UTF-8 bytes ------------------------------------------------- */

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
    PyObject *event = NULL;
    if (done) {
        event = PyDict_GetItemWithError(message, s_event); /* borrowed */
        if (event == NULL && PyErr_Occurred()) {
            Py_DECREF(message);
            return -1;
        }
        int has_response = PyDict_Contains(message, s_response);
        int has_result = PyDict_Contains(message, s_result);
        if (has_response < 0 || has_result < 0) {
            Py_DECREF(message);
            return -1;
        }
        done = (event != NULL || has_response) && !has_result;
    }
    int failed;
    if (!done) {
        Py_DECREF(message);
        PyObject *part = PyUnicode_DecodeUTF8(p, end - p, "replace");
        if (part == NULL) {
            return -1;
        }
        failed = add_other(others, PyList_GET_SIZE(events), part);
        Py_DECREF(part);
        return failed;
    }
    int has_action = PyDict_Contains(message, s_action_id);
    if (has_action < 0) {
        Py_DECREF(message);
        return -1;
    }
    int booted = event != NULL && PyUnicode_Check(event) &&
                 PyUnicode_Compare(event, s_fully_booted) == 0;
    if (event != NULL && !has_action && !booted) {
        failed = PyList_Append(events, message);
    }
    else {
        failed = add_other(others, PyList_GET_SIZE(events), message);
    }
    Py_DECREF(message);
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
     "split_utf8_region(raw, known, wanted, cls) -> (events, others, filtered): "
     "split_region on UTF-8 bytes, decoding only the values."},
    {"fill_headers", (PyCFunction)(void (*)(void))fill_headers, METH_FASTCALL,
     "fill_headers(text, store, known) -> bool: CRLF 'Key: value' lines into store; "
     "False on a line without ': ', a key not in known, or a repeated key."},
    {"split_region", (PyCFunction)(void (*)(void))split_region, METH_FASTCALL,
     "split_region(text, known, wanted, cls) -> (events, others, filtered): the "
     "messages of a decoded region, filtered, parsed and sorted (see the module)."},
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
    s_event = PyUnicode_InternFromString("Event");
    s_response = PyUnicode_InternFromString("Response");
    s_action_id = PyUnicode_InternFromString("ActionID");
    s_result = PyUnicode_InternFromString("Result");
    s_fully_booted = PyUnicode_InternFromString("FullyBooted");
    s_action_line = PyUnicode_FromString("\r\nActionID: ");
    s_empty_tuple = PyTuple_New(0);
    if (s_event == NULL || s_response == NULL || s_action_id == NULL || s_result == NULL ||
        s_fully_booted == NULL || s_action_line == NULL || s_empty_tuple == NULL) {
        return NULL;
    }
    return PyModule_Create(&speedups_module);
}
