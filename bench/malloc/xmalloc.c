/*
 * xmalloc.c: producers and consumers, after xmalloc-test. P producer threads allocate blocks of
 * 16..512 bytes (a few up to 8 KiB) and hand them, in batches of BATCH, through a shared queue to
 * P consumer threads, which check and free them: every block is freed by another thread than the
 * one that allocated it, and the producers' caches never see their blocks again.
 *   xmalloc [PAIRS=2] [BLOCKS=200000 per producer] [BATCH=64]
 * Prints the blocks and bytes passed through (the same on every malloc).
 */
#include "workload.h"

typedef struct batch {
    struct batch *next;
    int n;
    void *blocks[];
} batch;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static batch *queue;  /* batches waiting for a consumer, under lock */
static int producing; /* producers not yet done, under lock */
static long per_producer, batch_size;

typedef struct worker {
    uint64_t rng;
    long blocks, bad;
    unsigned long long bytes;
    char pad[64];
} worker;

static size_t block_size(uint64_t *rng)
{
    return wl_range(rng, 0, 31) == 0 ? wl_range(rng, 512, 8192) : wl_range(rng, 16, 512);
}

static void *produce(void *arg)
{
    worker *w = arg;
    for (long done = 0; done < per_producer;) {
        batch *b = wl_got(malloc(sizeof *b + (size_t)batch_size * sizeof(void *)));
        for (b->n = 0; b->n < batch_size && done < per_producer; b->n++, done++) {
            size_t n = block_size(&w->rng);
            unsigned char *p = wl_got(malloc(n));
            /* The size in the block's first word, for the consumer. */
            memcpy(p, &n, sizeof n);
            if (n > 8)
                p[n - 1] = (unsigned char)n;
            b->blocks[b->n] = p;
            w->bytes += n;
        }
        pthread_mutex_lock(&lock);
        b->next = queue;
        queue = b;
        pthread_cond_signal(&ready);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    producing--;
    pthread_cond_broadcast(&ready);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *consume(void *arg)
{
    worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (queue == NULL && producing > 0)
            pthread_cond_wait(&ready, &lock);
        batch *b = queue;
        if (b != NULL)
            queue = b->next;
        pthread_mutex_unlock(&lock);
        if (b == NULL)
            return NULL;
        for (int i = 0; i < b->n; i++) {
            unsigned char *p = b->blocks[i];
            size_t n;
            memcpy(&n, p, sizeof n);
            w->bad += n < 16 || n > 8192 || p[n - 1] != (unsigned char)n;
            w->blocks++;
            free(p);
        }
        free(b);
    }
}

static void *start(void *arg)
{
    worker *w = arg;
    return w->rng != 0 ? produce(w) : consume(w);
}

int main(int argc, char **argv)
{
    int pairs = (int)wl_arg(argc, argv, 1, 2);
    per_producer = wl_arg(argc, argv, 2, 200000);
    batch_size = wl_arg(argc, argv, 3, 64);
    producing = pairs;
    worker *w = wl_got(calloc((size_t)pairs * 2, sizeof *w));
    for (int i = 0; i < pairs; i++)
        w[2 * i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1); /* even: producers */
    wl_run(pairs * 2, start, w, sizeof *w);
    long blocks = 0, bad = 0;
    unsigned long long bytes = 0;
    for (int i = 0; i < pairs * 2; i++) {
        blocks += w[i].blocks;
        bad += w[i].bad;
        bytes += w[i].bytes;
    }
    printf("xmalloc: %d producers, %d consumers, %ld blocks, %llu bytes, %ld damaged\n", pairs,
           pairs, blocks, bytes, bad);
    free(w);
    return bad != 0 || blocks != pairs * per_producer;
}
