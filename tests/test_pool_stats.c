/*
 * test_pool_stats.c: statistics: exact values in scenarios small enough to count by hand, the
 * writers mp_stats_write and mp_stats_print (text, and JSON through a small validator), and names
 * in UTF-8 and not (a strict decoder, tests/utf8.h), cut on a character boundary and written as
 * valid UTF-8 JSON.
 * Only the public API is used (the helpers they share: test_pool.h). The misuse tests of
 * checked and secure pools are test_checked.c and test_secure.c.
 *
 * Usage: test_pool_stats            (no arguments; under a second)
 */
#define _POSIX_C_SOURCE 200809L

#include "test_pool.h"

/* ------------------------------------------------------------------------------------------------
 * Statistics: exact values in a small scenario
 * ---------------------------------------------------------------------------------------------- */

static bool stats_invariants(const mp_stats *s)
{
    return s->allocs - s->frees == s->blocks_in_use && s->blocks_in_use <= s->blocks_peak &&
           s->bytes_used <= s->bytes_reserved && s->bytes_used == s->blocks_in_use * s->block_size;
}

static void test_stats_exact(void)
{
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 24, .capacity = 10, .name = "s"});
    if (!CHECK("create: stats pool", pool != NULL))
        return;
    mp_stats s = stats_of(pool);
    CHECK("stats: fresh name", strcmp(s.name, "s") == 0);
    CHECK("stats: fresh block_size/align/stride/capacity",
          s.block_size == 24 && s.align == 8 && s.stride == 24 && s.capacity == 10);
    CHECK("stats: fresh counts all zero", s.blocks_in_use == 0 && s.blocks_peak == 0 &&
                                              s.blocks_free == 0 && s.allocs == 0 && s.frees == 0 &&
                                              s.failed_allocs == 0 && s.bytes_used == 0 &&
                                              s.resets == 0 && s.trims == 0);
    CHECK("stats: fresh pool holds no chunk, one map", s.chunks == 0 && s.source_maps == 1);

    void *p[10];
    for (int i = 0; i < 3; i++)
        p[i] = mp_pool_alloc(pool);
    s = stats_of(pool);
    CHECK("stats: 3 allocs", s.allocs == 3 && s.blocks_in_use == 3 && s.blocks_peak == 3 &&
                                 s.blocks_free == 0 && s.frees == 0 && s.bytes_used == 72);
    CHECK("stats: first alloc took one run",
          s.chunks >= 1 && s.source_maps == 2 && s.bytes_reserved > page_size());
    uint64_t reserved = s.bytes_reserved, chunks = s.chunks;

    mp_pool_free(pool, p[1]);
    s = stats_of(pool);
    CHECK("stats: 1 free", s.frees == 1 && s.blocks_in_use == 2 && s.blocks_free == 1 &&
                               s.blocks_peak == 3 && s.bytes_used == 48);
    p[1] = mp_pool_alloc(pool);
    s = stats_of(pool);
    CHECK("stats: reuse from the free list",
          s.allocs == 4 && s.blocks_free == 0 && s.blocks_in_use == 3 && s.blocks_peak == 3);
    for (int i = 3; i < 10; i++)
        p[i] = mp_pool_alloc(pool);
    CHECK("stats: full pool refuses", mp_pool_alloc(pool) == NULL);
    s = stats_of(pool);
    CHECK("stats: at capacity", s.allocs == 11 && s.blocks_in_use == 10 && s.blocks_peak == 10 &&
                                    s.failed_allocs == 1 && s.bytes_used == 240);
    CHECK("stats: 10 small blocks fit the first run",
          s.chunks == chunks && s.source_maps == 2 && s.bytes_reserved == reserved);
    for (int i = 0; i < 10; i += 2)
        mp_pool_free(pool, p[i]);
    s = stats_of(pool);
    CHECK("stats: after 5 frees",
          s.frees == 6 && s.blocks_in_use == 5 && s.blocks_free == 5 && s.blocks_peak == 10);
    mp_pool_reset(pool);
    s = stats_of(pool);
    CHECK("stats: after reset", s.frees == 11 && s.allocs == 11 && s.blocks_in_use == 0 &&
                                    s.blocks_peak == 10 && s.resets == 1 && s.failed_allocs == 1);
    mp_pool_trim(pool);
    s = stats_of(pool);
    CHECK("stats: after trim",
          s.trims == 1 && s.chunks == 0 && s.blocks_free == 0 && s.bytes_reserved == page_size());
    CHECK("stats: invariants hold", stats_invariants(&s));
    mp_pool_destroy(pool);

    /* MP_ZERO pools count the same way. */
    pool = make(100, 0, 0, MP_ZERO);
    if (!pool)
        return;
    for (int i = 0; i < 4; i++)
        p[i] = mp_pool_alloc(pool);
    mp_pool_free(pool, p[0]);
    mp_pool_free(pool, p[2]);
    s = stats_of(pool);
    CHECK("stats: MP_ZERO counts", s.allocs == 4 && s.frees == 2 && s.blocks_in_use == 2 &&
                                       s.blocks_free == 2 && s.blocks_peak == 4 &&
                                       s.bytes_used == 200);
    /* 100's own alignment is 4; the default is at least a pointer's (8 on 64-bit systems) */
    size_t a = alignof(void *) > 4 ? alignof(void *) : 4;
    CHECK("stats: MP_ZERO stride (100 rounded up to the default alignment)",
          s.stride == (100 + a - 1) / a * a && s.align == a);
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * mp_stats_write / mp_stats_print
 * ---------------------------------------------------------------------------------------------- */

typedef struct capture {
    char buf[16384];
    size_t len;
    int calls;
    bool overflow;
} capture;

static void capture_write(void *ctx, const char *text, size_t len)
{
    capture *c = ctx;
    c->calls++;
    if (c->len + len >= sizeof c->buf) {
        c->overflow = true;
        return;
    }
    memcpy(c->buf + c->len, text, len);
    c->len += len;
    c->buf[c->len] = '\0';
}

/* A minimal JSON validator (RFC 8259 grammar; no semantic checks): true if the input is exactly
 * one JSON value with optional whitespace around it. */
typedef struct json_in {
    const char *s;
    size_t n, i;
} json_in;

static bool json_value(json_in *j, int depth);

static void json_ws(json_in *j)
{
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static bool json_eat(json_in *j, char c)
{
    json_ws(j);
    if (j->i < j->n && j->s[j->i] == c) {
        j->i++;
        return true;
    }
    return false;
}

static bool json_string(json_in *j)
{
    if (!json_eat(j, '"'))
        return false;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i++];
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (j->i >= j->n)
            return false;
        c = (unsigned char)j->s[j->i++];
        if (c == 'u') {
            for (int k = 0; k < 4; k++, j->i++)
                if (j->i >= j->n || !strchr("0123456789abcdefABCDEF", j->s[j->i]) || !j->s[j->i])
                    return false;
        } else if (!c || !strchr("\"\\/bfnrt", c)) {
            return false;
        }
    }
    return false;
}

static size_t json_digits(json_in *j)
{
    size_t k = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
        j->i++, k++;
    return k;
}

static bool json_number(json_in *j)
{
    json_ws(j);
    if (j->i < j->n && j->s[j->i] == '-')
        j->i++;
    size_t start = j->i, k = json_digits(j);
    if (k == 0 || (k > 1 && j->s[start] == '0'))
        return false;
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        if (json_digits(j) == 0)
            return false;
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
            j->i++;
        if (json_digits(j) == 0)
            return false;
    }
    return true;
}

static bool json_list(json_in *j, char close, bool keyed, int depth)
{
    if (json_eat(j, close))
        return true;
    do {
        if (keyed && !(json_string(j) && json_eat(j, ':')))
            return false;
        if (!json_value(j, depth + 1))
            return false;
    } while (json_eat(j, ','));
    return json_eat(j, close);
}

static bool json_value(json_in *j, int depth)
{
    json_ws(j);
    if (depth > 32 || j->i >= j->n)
        return false;
    const char *lit[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(lit[k]);
        if (j->n - j->i >= len && memcmp(j->s + j->i, lit[k], len) == 0) {
            j->i += len;
            return true;
        }
    }
    switch (j->s[j->i]) {
    case '{':
        j->i++;
        return json_list(j, '}', true, depth);
    case '[':
        j->i++;
        return json_list(j, ']', false, depth);
    case '"':
        return json_string(j);
    default:
        return json_number(j);
    }
}

static bool json_valid(const char *s, size_t n)
{
    json_in j = {s, n, 0};
    json_ws(&j);
    if (j.i >= n || s[j.i] != '{') /* "one JSON object" */
        return false;
    if (!json_value(&j, 0))
        return false;
    json_ws(&j);
    return j.i == n;
}

/* True if the JSON text has the key "key" (quoted) followed by ':' and the number `value`. */
static bool json_has_number(const char *s, const char *key, uint64_t value)
{
    char q[64];
    snprintf(q, sizeof q, "\"%s\"", key);
    for (const char *at = strstr(s, q); at; at = strstr(at + 1, q)) {
        const char *v = at + strlen(q);
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v++ != ':')
            continue;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v < '0' || *v > '9')
            continue;
        char *end;
        errno = 0;
        unsigned long long got = strtoull(v, &end, 10);
        if (errno == 0 && got == value && strchr(",} \t\r\n", *end) && *end)
            return true;
    }
    return false;
}

/* True if some line of the text is "<key>: <value>" for some key (with optional spaces). */
static bool text_has_value(const char *s, uint64_t value)
{
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)value);
    for (const char *line = s; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
        const char *colon = strchr(line, ':'), *eol = strchr(line, '\n');
        if (!colon || (eol && colon > eol))
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strlen(want);
        if (strncmp(v, want, n) == 0 && (v[n] == '\n' || v[n] == '\0' || v[n] == ' '))
            return true;
    }
    return false;
}

#define NUM_FIELDS 16

/* The numeric fields of mp_stats, by name and address, so tests can loop over them. */
static void stats_fields(mp_stats *s, const char *names[NUM_FIELDS], uint64_t vals[NUM_FIELDS],
                         uint64_t base)
{
    static const char *const n[NUM_FIELDS] = {
        "block_size",  "align",       "stride", "capacity",      "blocks_in_use",  "blocks_peak",
        "blocks_free", "allocs",      "frees",  "failed_allocs", "bytes_reserved", "bytes_used",
        "chunks",      "source_maps", "resets", "trims"};
    for (int i = 0; i < NUM_FIELDS; i++) {
        names[i] = n[i];
        vals[i] = base + (uint64_t)i;
    }
    s->block_size = (size_t)vals[0];
    s->align = (size_t)vals[1];
    s->stride = (size_t)vals[2];
    s->capacity = (size_t)vals[3];
    s->blocks_in_use = vals[4];
    s->blocks_peak = vals[5];
    s->blocks_free = vals[6];
    s->allocs = vals[7];
    s->frees = vals[8];
    s->failed_allocs = vals[9];
    s->bytes_reserved = vals[10];
    s->bytes_used = vals[11];
    s->chunks = vals[12];
    s->source_maps = vals[13];
    s->resets = vals[14];
    s->trims = vals[15];
}

static void test_stats_write(void)
{
    static capture c;
    mp_stats s;
    const char *names[NUM_FIELDS];
    uint64_t vals[NUM_FIELDS];
    memset(&s, 0, sizeof s);
    strcpy(s.name, "conns");

    /* Text: the name first, then "key: value" lines carrying every value (distinct, < 1000). */
    stats_fields(&s, names, vals, 101);
    memset(&c, 0, sizeof c);
    CHECK("write: text returns 0", mp_stats_write(&s, MP_FORMAT_TEXT, capture_write, &c) == 0);
    CHECK("write: text produced output", c.calls > 0 && c.len > 0 && !c.overflow);
    const char *eol = strchr(c.buf, '\n');
    CHECK("write: text is headed by the name",
          eol && strstr(c.buf, "conns") && strstr(c.buf, "conns") < eol);
    for (int i = 0; i < NUM_FIELDS; i++)
        CHECK("write: text has a \"key: value\" line for every field",
              text_has_value(c.buf, vals[i]));
    int lines = 0;
    for (const char *p = c.buf; *p; p++)
        lines += *p == '\n';
    CHECK("write: text is one line per field plus the header", lines >= NUM_FIELDS + 1);
    CHECK("write: text ends with a newline", c.len > 0 && c.buf[c.len - 1] == '\n');

    /* JSON: one object with the field names of mp_stats; values up to UINT64_MAX exact. */
    stats_fields(&s, names, vals, UINT64_MAX - NUM_FIELDS + 1);
    s.block_size = s.align = s.stride = s.capacity = SIZE_MAX; /* size_t may be narrower */
    for (int i = 0; i < 4; i++)
        vals[i] = SIZE_MAX;
    memset(&c, 0, sizeof c);
    CHECK("write: json returns 0", mp_stats_write(&s, MP_FORMAT_JSON, capture_write, &c) == 0);
    CHECK("write: json is one well-formed object", c.len > 0 && json_valid(c.buf, c.len));
    CHECK("write: json has the name", strstr(c.buf, "\"name\"") && strstr(c.buf, "\"conns\""));
    for (int i = 4; i < NUM_FIELDS; i++)
        CHECK("write: json has every field with its exact 64-bit value",
              json_has_number(c.buf, names[i], vals[i]));
    for (int i = 0; i < 4; i++)
        CHECK("write: json has every size_t field exactly",
              json_has_number(c.buf, names[i], vals[i]));

    /* JSON escapes the name: quote, backslash and control characters. */
    strcpy(s.name, "a\"b\\c\nd\te\x01");
    memset(&c, 0, sizeof c);
    mp_stats_write(&s, MP_FORMAT_JSON, capture_write, &c);
    CHECK("write: json stays well-formed with quotes, backslashes and controls in the name",
          json_valid(c.buf, c.len));
    CHECK("write: json escapes the quote and backslash", strstr(c.buf, "a\\\"b\\\\c") != NULL);

    /* Real stats of a real pool round-trip too. */
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 40, .name = "real"});
    if (pool) {
        void *p = mp_pool_alloc(pool);
        mp_pool_alloc(pool);
        mp_pool_free(pool, p);
        mp_stats r = stats_of(pool);
        memset(&c, 0, sizeof c);
        CHECK("write: real stats as json",
              mp_stats_write(&r, MP_FORMAT_JSON, capture_write, &c) == 0 &&
                  json_valid(c.buf, c.len));
        CHECK("write: real json values",
              json_has_number(c.buf, "allocs", 2) && json_has_number(c.buf, "frees", 1) &&
                  json_has_number(c.buf, "block_size", 40) &&
                  json_has_number(c.buf, "bytes_used", 40) && strstr(c.buf, "\"real\""));
        mp_pool_destroy(pool);
    }

    /* EINVAL cases write nothing. */
    strcpy(s.name, "x");
    memset(&c, 0, sizeof c);
    CHECK("write: NULL stats gives EINVAL",
          mp_stats_write(NULL, MP_FORMAT_TEXT, capture_write, &c) == EINVAL);
    CHECK("write: NULL write gives EINVAL", mp_stats_write(&s, MP_FORMAT_TEXT, NULL, &c) == EINVAL);
    CHECK("write: format 2 gives EINVAL", mp_stats_write(&s, 2, capture_write, &c) == EINVAL);
    CHECK("write: format -1 gives EINVAL", mp_stats_write(&s, -1, capture_write, &c) == EINVAL);
    CHECK("write: nothing written on EINVAL", c.calls == 0);

    /* mp_stats_print writes the same bytes to a stream. */
    stats_fields(&s, names, vals, 500);
    for (int format = MP_FORMAT_TEXT; format <= MP_FORMAT_JSON; format++) {
        memset(&c, 0, sizeof c);
        mp_stats_write(&s, format, capture_write, &c);
        FILE *f = tmpfile();
        if (!f)
            continue;
        CHECK("print: returns 0 on a good stream", mp_stats_print(&s, format, f) == 0);
        rewind(f);
        static char back[16384];
        size_t n = fread(back, 1, sizeof back, f);
        CHECK("print: writes exactly what mp_stats_write does",
              n == c.len && memcmp(back, c.buf, n) == 0);
        CHECK("print: NULL stats gives EINVAL", mp_stats_print(NULL, format, f) == EINVAL);
        fclose(f);
        CHECK("print: NULL stream gives EINVAL", mp_stats_print(&s, format, NULL) == EINVAL);
    }
    FILE *f = tmpfile();
    if (f) {
        CHECK("print: unknown format gives EINVAL", mp_stats_print(&s, 7, f) == EINVAL);
        CHECK("print: nothing written on EINVAL", ftell(f) == 0);
        fclose(f);
    }
    /* A stream that fails: opened read-only, or unbuffered onto a full device. */
    f = fopen("/dev/null", "r");
    if (f) {
        CHECK("print: a read-only stream gives EIO", mp_stats_print(&s, MP_FORMAT_TEXT, f) == EIO);
        fclose(f);
    }
    f = fopen("/dev/full", "w");
    if (f) {
        setvbuf(f, NULL, _IONBF, 0);
        CHECK("print: an unbuffered stream on a full device gives EIO",
              mp_stats_print(&s, MP_FORMAT_JSON, f) == EIO);
        fclose(f);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Names in UTF-8, and bytes that are not: cut on a character boundary, written as valid UTF-8 JSON
 * ---------------------------------------------------------------------------------------------- */

/* The pool's statistics written in `format` into *c; true if the write returned 0. */
static bool write_pool_stats(const mp_pool *pool, int format, capture *c)
{
    mp_stats st = stats_of(pool);
    memset(c, 0, sizeof *c);
    return mp_stats_write(&st, format, capture_write, c) == 0 && !c->overflow;
}

/* The JSON of stats named `name` (a raw mp_stats, so any bytes) is valid UTF-8 and valid JSON. */
static bool json_of_name_valid(const char *name, capture *c)
{
    mp_stats st;
    memset(&st, 0, sizeof st);
    snprintf(st.name, sizeof st.name, "%s", name);
    memset(c, 0, sizeof *c);
    return mp_stats_write(&st, MP_FORMAT_JSON, capture_write, c) == 0 &&
           utf8_valid(c->buf, c->len) && json_valid(c->buf, c->len);
}

static void test_names_utf8(void)
{
    static capture c;
    char quoted[MP_NAME_MAX + 2];
    for (size_t i = 0; i < sizeof utf8_names / sizeof *utf8_names; i++) {
        mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 8, .name = utf8_names[i]});
        if (!CHECK("create: a pool named in UTF-8", pool != NULL))
            continue;
        const char *got = mp_pool_name(pool);
        CHECK("name: a UTF-8 name is cut to its longest prefix of whole characters that fits",
              name_is_longest_prefix(got, utf8_names[i]));
        CHECK("stats: the name cut the same way", strcmp(stats_of(pool).name, got) == 0);
        snprintf(quoted, sizeof quoted, "\"%s\"", got);
        CHECK("write: json of a UTF-8 name is valid UTF-8 and JSON, the name as it is",
              write_pool_stats(pool, MP_FORMAT_JSON, &c) && utf8_valid(c.buf, c.len) &&
                  json_valid(c.buf, c.len) && strstr(c.buf, quoted) != NULL);
        CHECK("write: text of a UTF-8 name is valid UTF-8",
              write_pool_stats(pool, MP_FORMAT_TEXT, &c) && utf8_valid(c.buf, c.len) &&
                  strstr(c.buf, quoted) != NULL);
        mp_pool_destroy(pool);
    }
    for (size_t i = 0; i < sizeof raw_names / sizeof *raw_names; i++) {
        mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 8, .name = raw_names[i]});
        if (!CHECK("create: a pool named with bytes that are not UTF-8", pool != NULL))
            continue;
        size_t len = strlen(raw_names[i]);
        CHECK("name: bytes that begin no sequence are kept as they are",
              strncmp(mp_pool_name(pool), raw_names[i], MP_NAME_MAX - 1) == 0 &&
                  strlen(mp_pool_name(pool)) == (len < MP_NAME_MAX ? len : MP_NAME_MAX - 1));
        CHECK("write: json of any name is valid UTF-8 and JSON",
              write_pool_stats(pool, MP_FORMAT_JSON, &c) && utf8_valid(c.buf, c.len) &&
                  json_valid(c.buf, c.len));
        CHECK("write: bytes that are not UTF-8 are written as \\ufffd",
              utf8_valid(mp_pool_name(pool), strlen(mp_pool_name(pool))) ||
                  strstr(c.buf, "\\ufffd") != NULL);
        mp_pool_destroy(pool);
    }
    CHECK("write: json escapes the quote, backslash and controls below 0x20 as RFC 8259 says",
          json_of_name_valid("a\"b\\c\nd\x01\x1f", &c) &&
              strstr(c.buf, "\"a\\\"b\\\\c\\u000ad\\u0001\\u001f\"") != NULL);
    CHECK("write: json replaces a lone 0xFF",
          json_of_name_valid("\xff", &c) && strstr(c.buf, "\"\\ufffd\"") != NULL);
    CHECK("write: json replaces an overlong form, byte by byte",
          json_of_name_valid("a\xc0\xaf", &c) && strstr(c.buf, "\"a\\ufffd\\ufffd\"") != NULL);
    CHECK("write: json replaces a surrogate, byte by byte",
          json_of_name_valid("\xed\xa0\x80", &c) &&
              strstr(c.buf, "\"\\ufffd\\ufffd\\ufffd\"") != NULL);

    /* mp_stats is the caller's to fill: a name cut inside a character is still written valid. */
    char cut[MP_NAME_MAX];
    memset(cut, 'a', sizeof cut);
    cut[MP_NAME_MAX - 2] = '\xc3';
    cut[MP_NAME_MAX - 1] = '\xa9'; /* the name's last byte is dropped: a lone 0xC3 before it */
    mp_stats st;
    memset(&st, 0, sizeof st);
    memcpy(st.name, cut, sizeof st.name);
    memset(&c, 0, sizeof c);
    CHECK("write: json of an unterminated name cut inside a character is valid UTF-8 and JSON",
          mp_stats_write(&st, MP_FORMAT_JSON, capture_write, &c) == 0 && utf8_valid(c.buf, c.len) &&
              json_valid(c.buf, c.len) && strstr(c.buf, "a\\ufffd\""));

    /* An error report names the pool by its cut name; the message stays valid UTF-8. */
    static seen e;
    mp_set_error_handler(record_error, &e);
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 8, .flags = MP_SECURE, .name = utf8_names[0]});
    void *p = pool ? mp_pool_alloc(pool) : NULL;
    if (CHECK("create: a secure pool named in UTF-8", p != NULL)) {
        mp_pool_free(pool, p);
        memset(&e, 0, sizeof e);
        mp_pool_free(pool, p);
        CHECK("errors: the pool's name and the message are valid UTF-8",
              e.n == 1 && name_is_longest_prefix(e.pool_name, utf8_names[0]) &&
                  utf8_valid(e.message, strlen(e.message)));
    }
    mp_pool_destroy(pool);
    mp_set_error_handler(NULL, NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------------------- */

int main(void)
{
    test_stats_exact();
    test_stats_write();
    test_names_utf8();
    return TEST_DONE();
}
