/*
 * bignum.c: one thread's churn of very short-lived small objects grown by realloc, after the cfrac
 * and espresso programs of the allocator benchmark suites. Numbers are heap objects with a heap
 * array of 32-bit limbs that grows by realloc; every operation makes a new number and the old
 * ones are freed at once. For k = 1..N it computes k! as (k-1)! times k, checks it by dividing
 * back, prints it in decimal through a string builder grown by realloc from 8 bytes (one heap
 * string per 9-digit group, joined), and sums the digits; ROUNDS times over.
 *   bignum [ROUNDS=20] [N=600]
 * Prints the digit sum of N! and the checksum of all the strings (the same on every malloc).
 */
#include "workload.h"

typedef struct num {
    size_t n, cap; /* limbs used (no leading zero limb), limbs allocated */
    uint32_t *d;   /* least significant first */
} num;

static num *num_new(size_t cap)
{
    num *a = wl_got(malloc(sizeof *a));
    a->n = 0;
    a->cap = cap;
    a->d = wl_got(malloc(cap * sizeof *a->d));
    return a;
}

static void num_free(num *a)
{
    free(a->d);
    free(a);
}

/* Appends a limb, growing the array by half again by realloc when full. */
static void num_push(num *a, uint32_t limb)
{
    if (a->n == a->cap) {
        a->cap += a->cap / 2 + 1;
        a->d = wl_got(realloc(a->d, a->cap * sizeof *a->d));
    }
    a->d[a->n++] = limb;
}

/* A new number a * m, grown limb by limb from a small array. */
static num *num_mul(const num *a, uint32_t m)
{
    num *r = num_new(2);
    uint64_t carry = 0;
    for (size_t i = 0; i < a->n; i++) {
        carry += (uint64_t)a->d[i] * m;
        num_push(r, (uint32_t)carry);
        carry >>= 32;
    }
    if (carry != 0)
        num_push(r, (uint32_t)carry);
    return r;
}

/* A new number a / m; *rem gets a % m. */
static num *num_div(const num *a, uint32_t m, uint32_t *rem)
{
    num *q = num_new(a->n > 0 ? a->n : 1);
    uint64_t r = 0;
    q->n = a->n;
    for (size_t i = a->n; i-- > 0;) {
        r = r << 32 | a->d[i];
        q->d[i] = (uint32_t)(r / m);
        r %= m;
    }
    while (q->n > 0 && q->d[q->n - 1] == 0)
        q->n--;
    *rem = (uint32_t)r;
    return q;
}

static int num_equal(const num *a, const num *b)
{
    return a->n == b->n && memcmp(a->d, b->d, a->n * sizeof *a->d) == 0;
}

typedef struct str {
    size_t len, cap;
    char *s;
} str;

static void str_add(str *s, const char *t, size_t n)
{
    while (s->len + n + 1 > s->cap) {
        s->cap *= 2;
        s->s = wl_got(realloc(s->s, s->cap));
    }
    memcpy(s->s + s->len, t, n);
    s->len += n;
    s->s[s->len] = '\0';
}

/* A group of 9 digits (fewer for the most significant, full: zero-padded) as a new string. */
static char *group_decimal(uint32_t v, int full)
{
    char *s = wl_got(malloc(16)), *e = s + 15;
    *e = '\0';
    do {
        *--e = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || (full && e > s + 6));
    return memmove(s, e, (size_t)(s + 16 - e));
}

/* a in decimal, a new string: the 9-digit groups (each a short-lived heap string) are made from
 * the least significant up and joined from the most significant down. */
static char *num_decimal(const num *a)
{
    size_t groups = 0, cap = 4;
    char **g = wl_got(malloc(cap * sizeof *g));
    num *x = num_div(a, 1, &(uint32_t){0});
    while (x->n > 0 || groups == 0) {
        uint32_t rem;
        num *q = num_div(x, 1000000000u, &rem);
        num_free(x);
        x = q;
        if (groups == cap)
            g = wl_got(realloc(g, (cap *= 2) * sizeof *g));
        g[groups++] = group_decimal(rem, x->n > 0);
    }
    num_free(x);
    str s = {0, 8, wl_got(malloc(8))};
    s.s[0] = '\0';
    while (groups-- > 0) {
        str_add(&s, g[groups], strlen(g[groups]));
        free(g[groups]);
    }
    free(g);
    return s.s;
}

int main(int argc, char **argv)
{
    long rounds = wl_arg(argc, argv, 1, 20);
    long n = wl_arg(argc, argv, 2, 600);
    if (rounds < 1 || n < 1)
        return 2;
    unsigned long long check = 0, digits = 0;
    long bad = 0;
    for (long r = 0; r < rounds; r++) {
        num *f = num_new(1);
        num_push(f, 1);
        for (uint32_t k = 1; k <= (uint32_t)n; k++) {
            num *next = num_mul(f, k);
            uint32_t rem;
            num *back = num_div(next, k, &rem);
            bad += rem != 0 || !num_equal(back, f);
            num_free(back);
            num_free(f);
            f = next;
            char *s = num_decimal(f);
            size_t len = strlen(s);
            check = check * 31 + len + (unsigned char)s[len / 2];
            if (k == (uint32_t)n) {
                digits = 0;
                for (size_t i = 0; i < len; i++)
                    digits += (unsigned)(s[i] - '0');
            }
            free(s);
        }
        num_free(f);
    }
    printf("bignum: %ld rounds of 1..%ld!, digit sum of %ld! %llu, checksum %llx, %ld wrong\n",
           rounds, n, n, digits, check, bad);
    return bad != 0;
}
