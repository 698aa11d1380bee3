/*
 * bench_secure_bound.c: how cheap could a secure pool's alloc+free pair be on this machine?
 *
 * Issue 4 asks a secure pool for "at most 1.5x the plain pool's pair loop", with links encoded and
 * validated on every pop and double frees detected. This program times the least any design could
 * do for that: every variant is written out inline in its own loop, with no call, no statistics
 * beyond one count, no growth and no error path but an abort, over 32 blocks of 64 bytes in one 64
 * KiB chunk. Each loop pops a block, writes its last byte and pushes it back, as bench_pool's pair
 * does.
 *
 *   plain   the original free list: pop and push.
 *   decode  links stored as next ^ mask(link address), decoded on pop; nothing checked.
 *   check   decode, and the decoded link must be NULL or a block of the popped block's chunk
 *           (aligned, by a mask and a compare: mimalloc's "same page" test).
 *   tag     check, and double frees detected the cheap way: a freed block carries a tag word
 *           (key ^ its address) that free tests first and alloc clears. Probabilistic: a program
 *           that writes the tag word while the block is free defeats it.
 *   bits    check, and double frees detected exactly: a free bit per slot out of the block, set
 *           by free (which first tests it) and cleared by alloc, as mempool's secure pool does.
 *
 * Two masks: "mul", mempool's (a per-pool key ^ the link's address times 2^64 / phi), and "shift",
 * glibc's safe-linking (the key ^ the link's address >> 12; glibc itself has no key).
 * The figure is ns per pair, the median of 7 runs, and the ratio to plain, the median of the
 * per-run ratios (each run times plain first, then the variants).
 *
 * Usage: bench_secure_bound [pairs per run]   (default 100000000)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK ((uintptr_t)64 * 1024)
#define BLOCK 64
#define NBLOCKS 32
#define RUNS 7
#define GOLDEN 0x9E3779B97F4A7C15u

typedef struct bpool {
    void *head;
    uint64_t allocs;
    uintptr_t key;
    unsigned char *bits; /* a bit per slot of the chunk: 1 = free */
    char *base;          /* the chunk */
} bpool;

static _Noreturn void bad(void)
{
    fprintf(stderr, "bench_secure_bound: a check failed on a healthy list\n");
    abort();
}

static inline uintptr_t mask_mul(const bpool *p, const void *at)
{
    return p->key ^ ((uintptr_t)at * (uintptr_t)GOLDEN);
}

static inline uintptr_t mask_shift(const bpool *p, const void *at)
{
    return p->key ^ ((uintptr_t)at >> 12);
}

static inline size_t slot_of(const bpool *p, const char *b)
{
    return (size_t)(b - p->base) / BLOCK;
}

/* The loop of one variant: ALLOC sets b, FREE gives it back. */
#define PAIRS(name, ALLOC, FREE)                                                                   \
    static __attribute__((noinline)) double name(bpool *p, uint64_t n)                             \
    {                                                                                              \
        double t0 = now_ns();                                                                      \
        for (uint64_t i = 0; i < n; i++) {                                                         \
            char *b;                                                                               \
            ALLOC;                                                                                 \
            b[BLOCK - 1] = (char)i;                                                                \
            __asm__ volatile("" ::: "memory");                                                     \
            FREE;                                                                                  \
        }                                                                                          \
        return (now_ns() - t0) / (double)n;                                                        \
    }

#define POP_PLAIN                                                                                  \
    b = p->head;                                                                                   \
    if (__builtin_expect(b == NULL, 0))                                                            \
        bad();                                                                                     \
    p->head = *(void **)b;                                                                         \
    p->allocs++
#define PUSH_PLAIN                                                                                 \
    *(void **)b = p->head;                                                                         \
    p->head = b

/* Pops with link decoding by MASK; CHECKED: validate the decoded link. */
#define POP_DECODE(MASK, CHECKED)                                                                  \
    b = p->head;                                                                                   \
    if (__builtin_expect(b == NULL, 0))                                                            \
        bad();                                                                                     \
    uintptr_t next = *(uintptr_t *)b ^ MASK(p, b);                                                 \
    if (CHECKED &&                                                                                 \
        __builtin_expect(                                                                          \
            next != 0 && (((next ^ (uintptr_t)b) >= CHUNK) || (next & (BLOCK - 1)) != 0), 0))      \
        bad();                                                                                     \
    p->head = (void *)next;                                                                        \
    p->allocs++
#define PUSH_ENCODE(MASK)                                                                          \
    *(uintptr_t *)b = (uintptr_t)p->head ^ MASK(p, b);                                             \
    p->head = b

#define TAG_CLEAR ((uintptr_t *)b)[1] = 0
#define TAG_TEST_SET                                                                               \
    uintptr_t tag = p->key ^ (uintptr_t)b;                                                         \
    if (__builtin_expect(((uintptr_t *)b)[1] == tag, 0))                                           \
        bad();                                                                                     \
    ((uintptr_t *)b)[1] = tag
#define BIT_CLEAR                                                                                  \
    size_t s = slot_of(p, b);                                                                      \
    p->bits[s / 8] &= (unsigned char)~(1u << (s % 8))
#define BIT_TEST_SET                                                                               \
    size_t s = slot_of(p, b);                                                                      \
    if (__builtin_expect((p->bits[s / 8] >> (s % 8) & 1u) != 0, 0))                                \
        bad();                                                                                     \
    p->bits[s / 8] |= (unsigned char)(1u << (s % 8))

PAIRS(pairs_plain, POP_PLAIN, PUSH_PLAIN)
PAIRS(pairs_decode_mul, POP_DECODE(mask_mul, 0), PUSH_ENCODE(mask_mul))
PAIRS(pairs_check_mul, POP_DECODE(mask_mul, 1), PUSH_ENCODE(mask_mul))
PAIRS(
    pairs_tag_mul,
    {
        POP_DECODE(mask_mul, 1);
        TAG_CLEAR;
    },
    {
        TAG_TEST_SET;
        PUSH_ENCODE(mask_mul);
    })
PAIRS(
    pairs_bits_mul,
    {
        POP_DECODE(mask_mul, 1);
        BIT_CLEAR;
    },
    {
        BIT_TEST_SET;
        PUSH_ENCODE(mask_mul);
    })
PAIRS(pairs_decode_shift, POP_DECODE(mask_shift, 0), PUSH_ENCODE(mask_shift))
PAIRS(pairs_check_shift, POP_DECODE(mask_shift, 1), PUSH_ENCODE(mask_shift))
PAIRS(
    pairs_tag_shift,
    {
        POP_DECODE(mask_shift, 1);
        TAG_CLEAR;
    },
    {
        TAG_TEST_SET;
        PUSH_ENCODE(mask_shift);
    })
PAIRS(
    pairs_bits_shift,
    {
        POP_DECODE(mask_shift, 1);
        BIT_CLEAR;
    },
    {
        BIT_TEST_SET;
        PUSH_ENCODE(mask_shift);
    })

typedef struct variant {
    const char *name;
    double (*run)(bpool *, uint64_t);
    uintptr_t (*mask)(const bpool *, const void *); /* NULL: links stored as they are */
} variant;

static const variant variants[] = {
    {"plain", pairs_plain, NULL},
    {"decode, mul", pairs_decode_mul, mask_mul},
    {"check, mul", pairs_check_mul, mask_mul},
    {"tag, mul", pairs_tag_mul, mask_mul},
    {"bits, mul", pairs_bits_mul, mask_mul},
    {"decode, shift", pairs_decode_shift, mask_shift},
    {"check, shift", pairs_check_shift, mask_shift},
    {"tag, shift", pairs_tag_shift, mask_shift},
    {"bits, shift", pairs_bits_shift, mask_shift},
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

/* Links all NBLOCKS blocks of the chunk as free, encoded for v, with their tags clear and bits set.
 * */
static void setup(bpool *p, char *chunk, unsigned char *bits, const variant *v)
{
    memset(p, 0, sizeof *p);
    p->key = (uintptr_t)0x5bd1e9955bd1e995u; /* its low half where pointers have 32 bits */
    p->base = chunk;
    p->bits = bits;
    memset(bits, 0, CHUNK / BLOCK / 8);
    for (int i = NBLOCKS - 1; i >= 0; i--) {
        char *b = chunk + (size_t)i * BLOCK;
        uintptr_t link = (uintptr_t)p->head ^ (v->mask != NULL ? v->mask(p, b) : 0);
        memcpy(b, &link, sizeof link);
        memset(b + sizeof link, 0, sizeof link);
        bits[i / 8] |= (unsigned char)(1u << (i % 8));
        p->head = b;
    }
}

static double median(double *a, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && a[j] < a[j - 1]; j--) {
            double t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
        }
    return a[n / 2];
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000000u;
    char *chunk = aligned_alloc(CHUNK, CHUNK);
    static unsigned char bits[CHUNK / BLOCK / 8];
    static double ns[NVARIANTS][RUNS], ratio[NVARIANTS][RUNS];
    if (chunk == NULL || n == 0)
        return 1;
    bpool p;
    for (int r = 0; r < RUNS; r++)
        for (size_t v = 0; v < NVARIANTS; v++) {
            setup(&p, chunk, bits, &variants[v]);
            variants[v].run(&p, n / 16 + 1); /* warm */
            ns[v][r] = variants[v].run(&p, n);
            ratio[v][r] = ns[v][r] / ns[0][r];
        }
    printf("bench_secure_bound: the least a secure pair can do, written inline (%d runs of %llu "
           "pairs)\n",
           RUNS, (unsigned long long)n);
    printf("%-16s %10s %14s\n", "variant", "ns/pair", "x plain");
    for (size_t v = 0; v < NVARIANTS; v++) {
        double t = median(ns[v], RUNS), x = median(ratio[v], RUNS);
        printf("%-16s %10.2f %13.2fx\n", variants[v].name, t, x);
    }
    free(chunk);
    return 0;
}
