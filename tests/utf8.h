/*
 * utf8.h: what the tests of names and of the statistics writers (test_pool.c, test_heap.c,
 * test_arena.c) share:
 *   - a strict UTF-8 decoder, written apart from the library's: every sequence well-formed, no
 *     overlong form, no surrogate, nothing above U+10FFFF (RFC 3629);
 *   - a check of the strings in JSON text: each closed, no raw control character, known escapes;
 *   - the names the tests give (valid UTF-8 of 1 to 4 bytes a character, and bytes that are not),
 *     and the check that a name the library kept is the longest prefix of the given one that fits.
 * Everything is static inline so that a program using only part of it compiles without warnings.
 */
#ifndef MP_TEST_UTF8_H
#define MP_TEST_UTF8_H

#include "mempool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The length of the well-formed sequence at s (n bytes left), or 0 if there is none. */
static inline size_t utf8_decode(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t c, min;
    if (n == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0)
        len = 2, c = s[0] & 0x1Fu, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, c = s[0] & 0x0Fu, min = 0x800;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, c = s[0] & 0x07u, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return len;
}

/* The n bytes at s are valid UTF-8. */
static inline bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, len; i < n; i += len)
        if ((len = utf8_decode((const unsigned char *)s + i, n - i)) == 0)
            return false;
    return true;
}

/* Every string in the JSON text is closed and holds no raw control character, and each of its
 * escapes is one of RFC 8259's. */
static inline bool json_strings_sane(const char *s, size_t n)
{
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!in || c == '"') {
            in = !in && c == '"';
            continue;
        }
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (++i >= n || s[i] == '\0' || !strchr("\"\\/bfnrtu", s[i]))
            return false;
        for (int k = 0; s[i] == 'u' && k < 4; k++)
            if (i + 1 + (size_t)k >= n || s[i + 1 + k] == '\0' ||
                !strchr("0123456789abcdefABCDEF", s[i + 1 + k]))
                return false;
        i += s[i] == 'u' ? 4 : 0;
    }
    return !in;
}

/* The library kept `got` for the valid UTF-8 name `given`: valid UTF-8, a prefix of given, at most
 * MP_NAME_MAX - 1 bytes, and the longest such: given ends there or its next character would not
 * fit. */
static inline bool name_is_longest_prefix(const char *got, const char *given)
{
    size_t n = strlen(got), g = strlen(given);
    if (n > MP_NAME_MAX - 1 || n > g || memcmp(got, given, n) != 0 || !utf8_valid(got, n))
        return false;
    size_t next = utf8_decode((const unsigned char *)given + n, g - n);
    return n == g || (next != 0 && n + next > MP_NAME_MAX - 1);
}

/* Names in valid UTF-8 that do not fit whole (20 x U+00E9, 11 x U+20AC, 8 x U+1F600, and a
 * character that ends a byte past the limit), and ones that do, the last exactly. */
static const char *const utf8_names[] = {
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
};

/* Names with bytes that are not UTF-8 (a lone 0xFF, an overlong '/', a lone continuation byte, a
 * surrogate, U+110000, a sequence cut short by the end, and one cut by the length limit), and with
 * control characters, quotes and backslashes. */
static const char *const raw_names[] = {
    "\xff",
    "ab\xc0\257cd", /* \257: 0xAF, an octal escape ends after three digits */
    "\x80x",
    "s\xed\xa0\x80s",
    "\xf4\x90\x80\x80",
    "ab\xe2\x82",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe2\x82x",
    "a\"b\\c\nd\te\x01\x1f\x7f",
};

#endif /* MP_TEST_UTF8_H */
