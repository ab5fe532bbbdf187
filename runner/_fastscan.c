/* Optional C accelerator for runner.datasets: validates and canonicalises a block of clean JSONL lines.
 *
 * scan_block(block, input_key, output_key) returns None unless EVERY non-blank line of the block is a JSON
 * object holding both keys with non-blank string values (other keys may hold any JSON value). The Python
 * path, which names problems precisely, then takes the block; this module never reports errors itself.
 * On success it returns (canonical, example_hashes, count, max_input_chars, max_output_chars, text_bytes):
 * the same canonical bytes the Python path builds (b"%d:%b%d:%b" of the UTF-8 input and output per
 * example) and one 64-bit example hash per example, as example_hash() computes it.
 *
 * Acceptance is deliberately narrower than Python's json module (NaN, Infinity, lone surrogates and very
 * deep nesting all fall back), never wider: anything accepted here parses identically there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 500

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int buf_reserve(Buffer *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 1;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) return 0;
    b->data = data;
    b->cap = cap;
    return 1;
}

static int buf_append(Buffer *b, const char *src, Py_ssize_t n) {
    if (!buf_reserve(b, n)) return 0;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 1;
}

/* A fast 64-bit mix over 8-byte words: duplicate detection only compares example hashes within one run. */
static uint64_t example_hash64(const char *data, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, w;
    while (n >= 8) {
        memcpy(&w, data, 8);
        h ^= w;
        h *= 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        data += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, data, (size_t)n);
    h ^= w;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    return h;
}

/* Python's str.isspace() code points. */
static int is_py_space(uint32_t cp) {
    if (cp >= 0x09 && cp <= 0x0D) return 1;
    if (cp >= 0x1C && cp <= 0x20) return 1;
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680) return 1;
    if (cp >= 0x2000 && cp <= 0x200A) return 1;
    return cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

typedef struct {
    const char *p, *end;
} Cursor;

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') v |= ch - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

static int put_utf8(Buffer *b, uint32_t cp) {
    char tmp[4];
    int n;
    if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return buf_append(b, tmp, n);
}

/* A strict UTF-8 sequence starting at p (first byte >= 0x80): its length, or 0 if invalid. */
static int utf8_sequence(const unsigned char *p, const unsigned char *end, uint32_t *cp) {
    unsigned char b0 = p[0];
    int n;
    uint32_t v, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) { n = 2; v = b0 & 0x1F; min = 0x80; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { n = 3; v = b0 & 0x0F; min = 0x800; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { n = 4; v = b0 & 0x07; min = 0x10000; }
    else return 0;
    if (end - p < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

/* Nonzero when one of w's 8 bytes ends a plain ASCII run: '"', '\\', a control (< 0x20) or a byte >= 0x80. Each
 * test is the exact "has a byte below n" bit trick, so a word is skipped only when none of its bytes is one. */
static inline uint64_t ends_run(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | w) & highs;
}

/* Parse a JSON string at c->p (on the opening quote). With out != NULL, append its UTF-8 to out and
 * count characters and non-space characters. Returns 1 on success. */
static int parse_string(Cursor *c, Buffer *out, Py_ssize_t *chars, Py_ssize_t *visible) {
    const char *p = c->p + 1;
    while (p < c->end) {
        /* A run of plain ASCII is copied at once; only quotes, escapes, controls and UTF-8 stop it. */
        const char *run = p;
        uint64_t word;
        while (c->end - p >= 8) {  /* eight bytes at a time, then byte by byte to the one that ends the run */
            memcpy(&word, p, 8);
            if (ends_run(word)) break;
            p += 8;
        }
        while (p < c->end) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x80) break;
            p++;
        }
        if (p > run) {
            if (out && !buf_append(out, run, p - run)) return -1;
            if (chars) {
                *chars += p - run;
                for (const char *q = run; !*visible && q < p; q++)
                    if (*q != ' ') *visible = 1;  /* in a JSON string, the only raw ASCII space is ' ' */
            }
        }
        if (p >= c->end) break;
        unsigned char ch = (unsigned char)*p;
        uint32_t cp;
        if (ch == '"') {
            c->p = p + 1;
            return 1;
        }
        if (ch < 0x20) return 0;
        if (ch == '\\') {
            if (p + 1 >= c->end) return 0;
            char e = p[1];
            p += 2;
            switch (e) {
                case '"': cp = '"'; break;
                case '\\': cp = '\\'; break;
                case '/': cp = '/'; break;
                case 'b': cp = '\b'; break;
                case 'f': cp = '\f'; break;
                case 'n': cp = '\n'; break;
                case 'r': cp = '\r'; break;
                case 't': cp = '\t'; break;
                case 'u':
                    if (c->end - p < 4 || !hex4(p, &cp)) return 0;
                    p += 4;
                    if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;  /* lone low surrogate */
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        uint32_t low;
                        if (c->end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &low)) return 0;
                        if (low < 0xDC00 || low > 0xDFFF) return 0;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        p += 6;
                    }
                    break;
                default: return 0;
            }
            if (out && !put_utf8(out, cp)) return -1;
        } else {
            int n = utf8_sequence((const unsigned char *)p, (const unsigned char *)c->end, &cp);
            if (!n) return 0;
            if (out && !buf_append(out, p, n)) return -1;
            p += n;
        }
        if (chars) {
            (*chars)++;
            if (!is_py_space(cp)) *visible = 1;
        }
    }
    return 0;
}

static int skip_value(Cursor *c, int depth);

static int skip_number(Cursor *c) {
    const char *p = c->p;
    if (p < c->end && *p == '-') p++;
    if (p >= c->end) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { while (p < c->end && *p >= '0' && *p <= '9') p++; }
    else return 0;
    if (p < c->end && *p == '.') {
        p++;
        if (p >= c->end || *p < '0' || *p > '9') return 0;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < c->end && (*p == '+' || *p == '-')) p++;
        if (p >= c->end || *p < '0' || *p > '9') return 0;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    }
    c->p = p;
    return 1;
}

static int skip_literal(Cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int skip_container(Cursor *c, int depth, char close, int is_object) {
    if (depth > MAX_DEPTH) return 0;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) { c->p++; return 1; }
    while (c->p < c->end) {
        if (is_object) {
            if (*c->p != '"' || parse_string(c, NULL, NULL, NULL) != 1) return 0;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return 0;
            c->p++;
            skip_ws(c);
        }
        if (!skip_value(c, depth + 1)) return 0;
        skip_ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == close) { c->p++; return 1; }
        if (*c->p != ',') return 0;
        c->p++;
        skip_ws(c);
    }
    return 0;
}

static int skip_value(Cursor *c, int depth) {
    if (c->p >= c->end) return 0;
    switch (*c->p) {
        case '"': return parse_string(c, NULL, NULL, NULL) == 1;
        case '{': return skip_container(c, depth, '}', 1);
        case '[': return skip_container(c, depth, ']', 0);
        case 't': return skip_literal(c, "true");
        case 'f': return skip_literal(c, "false");
        case 'n': return skip_literal(c, "null");
        default: return skip_number(c);
    }
}

/* b"%d:%b" of one value: its length in decimal, a colon, its bytes (no snprintf: this runs twice an example). */
static int append_prefixed(Buffer *b, const Buffer *value) {
    char digits[24], *d = digits + sizeof digits;
    Py_ssize_t len = value->len;
    *--d = ':';
    do { *--d = (char)('0' + len % 10); len /= 10; } while (len);
    Py_ssize_t n = digits + sizeof digits - d;
    if (!buf_reserve(b, n + value->len)) return 0;
    memcpy(b->data + b->len, d, n);
    memcpy(b->data + b->len + n, value->data, value->len);
    b->len += n + value->len;
    return 1;
}

typedef struct {
    Buffer value;
    Py_ssize_t chars, visible;
    int found;
} Field;

/* One line: 1 if it is an object with both keys as non-blank strings (values in fields), 0 if not,
 * -1 on memory error. */
static int parse_line(Cursor *c, const char *in_key, Py_ssize_t in_len, const char *out_key, Py_ssize_t out_len,
                      Field *in, Field *out, Buffer *key) {
    in->found = out->found = 0;
    skip_ws(c);
    if (c->p >= c->end || *c->p != '{') return 0;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') return 0;
    while (c->p < c->end) {
        if (*c->p != '"') return 0;
        key->len = 0;
        int r = parse_string(c, key, NULL, NULL);
        if (r != 1) return r;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') return 0;
        c->p++;
        skip_ws(c);
        Field *target = NULL;
        if (key->len == in_len && memcmp(key->data, in_key, in_len) == 0) target = in;
        else if (key->len == out_len && memcmp(key->data, out_key, out_len) == 0) target = out;
        if (target) {  /* a repeated key: the last one wins, as in Python's json */
            if (c->p >= c->end || *c->p != '"') return 0;
            target->value.len = 0;
            target->chars = target->visible = 0;
            r = parse_string(c, &target->value, &target->chars, &target->visible);
            if (r != 1) return r;
            target->found = 1;
        } else if (!skip_value(c, 1)) {
            return 0;
        }
        skip_ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == '}') {
            c->p++;
            skip_ws(c);
            return c->p == c->end && in->found && out->found && in->visible > 0 && out->visible > 0;
        }
        if (*c->p != ',') return 0;
        c->p++;
        skip_ws(c);
    }
    return 0;
}

static PyObject *scan_block(PyObject *self, PyObject *args) {
    Py_buffer block;
    const char *in_key, *out_key;
    Py_ssize_t in_len, out_len;
    if (!PyArg_ParseTuple(args, "y*y#y#", &block, &in_key, &in_len, &out_key, &out_len)) return NULL;
    Buffer canonical = {0}, hashes = {0}, key = {0};
    Field in = {{0}}, out = {{0}};
    Py_ssize_t count = 0, max_in = 0, max_out = 0, text_bytes = 0;
    PyObject *result = NULL;
    int ok = 1, oom = 0;
    const char *p = block.buf, *end = p + block.len;
    Py_BEGIN_ALLOW_THREADS
    while (p <= end) {
        const char *nl = memchr(p, '\n', end - p);
        const char *line_end = nl ? nl : end;
        Cursor c = {p, line_end};
        skip_ws(&c);
        if (c.p < line_end) {
            Cursor line = {p, line_end};
            int r = parse_line(&line, in_key, in_len, out_key, out_len, &in, &out, &key);
            if (r != 1) { ok = 0; oom = r < 0; break; }
            Py_ssize_t start = canonical.len;
            if (!append_prefixed(&canonical, &in.value) || !append_prefixed(&canonical, &out.value)) {
                ok = 0; oom = 1; break;
            }
            int64_t hash = (int64_t)example_hash64(canonical.data + start, canonical.len - start);
            if (!buf_append(&hashes, (const char *)&hash, sizeof hash)) { ok = 0; oom = 1; break; }
            count++;
            text_bytes += in.value.len + out.value.len;
            if (in.chars > max_in) max_in = in.chars;
            if (out.chars > max_out) max_out = out.chars;
        }
        if (!nl) break;
        p = nl + 1;
    }
    Py_END_ALLOW_THREADS
    if (oom) PyErr_NoMemory();
    else if (!ok) { Py_INCREF(Py_None); result = Py_None; }
    else result = Py_BuildValue("(y#y#nnnn)", canonical.data ? canonical.data : "", canonical.len,
                                hashes.data ? hashes.data : "", hashes.len, count, max_in, max_out, text_bytes);
    PyMem_Free(canonical.data);
    PyMem_Free(hashes.data);
    PyMem_Free(key.data);
    PyMem_Free(in.value.data);
    PyMem_Free(out.value.data);
    PyBuffer_Release(&block);
    return result;
}

static PyObject *example_hash(PyObject *self, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    int64_t hash = (int64_t)example_hash64(data.buf, data.len);
    PyBuffer_Release(&data);
    return PyLong_FromLongLong(hash);
}

static PyMethodDef methods[] = {
    {"scan_block", scan_block, METH_VARARGS, "Canonicalise a block of clean JSONL lines, or None."},
    {"example_hash", example_hash, METH_O, "The 64-bit hash of one example's canonical bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastscan(void) { return PyModule_Create(&module); }
