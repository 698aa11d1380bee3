/*
 * peer_apr.h: Apache APR's pools (apr_palloc, apr_pool_clear) as a suite peer, for the region
 * workload only: one pool per handle under APR's global allocator, default options (its
 * allocator keeps freed blocks for the next use, max_free unlimited). Freeing one block does
 * nothing; the region releases everything with apr_pool_clear.
 */
#ifndef MP_BENCH_PEER_APR_H
#define MP_BENCH_PEER_APR_H

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_version.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "apr"
#define PEER_FIXED_SIZE 1
#define PEER_THREAD_SAFE 0
#define PEER_RELEASE_ALL 1

typedef apr_pool_t peer_handle;

static bool peer_init(char *about, size_t n)
{
    if (apr_initialize() != APR_SUCCESS) {
        snprintf(about, n, "apr_initialize failed");
        return false;
    }
    snprintf(about, n, "APR %s pools: apr_palloc, apr_pool_clear (default allocator)",
             apr_version_string());
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live;
    apr_pool_t *p = NULL;
    return apr_pool_create(&p, NULL) == APR_SUCCESS ? p : NULL;
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    return apr_palloc(h, size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)p, (void)size; /* a pool frees nothing one by one */
}

static void peer_release_all(peer_handle *h)
{
    apr_pool_clear(h);
}

static void peer_close(peer_handle *h)
{
    apr_pool_destroy(h);
}

#endif /* MP_BENCH_PEER_APR_H */
