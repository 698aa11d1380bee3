#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/ (deterministic: the same files every run).

Each seed is a pool header (5 bytes, see fuzz_pool.c) followed by operations. The seeds cover each
pool kind (plain, checked, secure, both) with and without MP_ZERO, in a buffer and not, with a
capacity and not, and each operation, so the regression run and the fuzzer start from every path.
Usage: fuzz/make_corpus.py [DIR]   (default: the corpus/ directory next to this script)
"""
import os
import random
import sys

ALLOC, FREE, RESET, TRIM, CHECK, OWNS, MISUSE, REVERIFY = 0, 6, 10, 11, 12, 13, 14, 15


def program(rng, nops, misuse):
    out = []
    for _ in range(nops):
        r = rng.random()
        if r < 0.45:
            out.append(ALLOC + rng.randrange(6))
        elif r < 0.80:
            out += [FREE + rng.randrange(4), rng.randrange(256)]
        elif r < 0.83:
            out.append(RESET)
        elif r < 0.86:
            out.append(TRIM)
        elif r < 0.92:
            out.append(CHECK)
        elif r < 0.95:
            out.append(rng.choice([OWNS, REVERIFY]))
        elif misuse:
            out += [MISUSE, rng.randrange(256)]
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(4)
    n = 0
    # kind byte: bits 0-1 plain/checked/secure/both, bit 2 MP_ZERO, bit 3 buffer, bit 4 leak at end
    for kind in range(4):
        for extra in (0, 4, 8, 8 | 4, 16):
            for bsel, asel, cap in ((7, 0, 0), (5, 6, 40), (128 + 3, 4, 0), (14, 8, 12)):
                bufsel = rng.randrange(256)
                head = [kind | extra, bsel, asel, cap, bufsel]
                ops = program(rng, rng.randrange(40, 300), misuse=kind != 0)
                with open(os.path.join(outdir, "seed-%03d" % n), "wb") as f:
                    f.write(bytes(head + ops))
                n += 1
    # Edge inputs: empty, a header only, a header and a burst of allocations then frees.
    for i, data in enumerate([b"", bytes([1, 2, 3, 4, 5]),
                              bytes([2, 7, 0, 0, 0] + [0] * 200 + [6, 0] * 200 + [12]),
                              bytes([9, 9, 0, 5, 3] + [0] * 20 + [12] + [14, 4, 14, 8])]):
        with open(os.path.join(outdir, "edge-%d" % i), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (n + 4, outdir))


if __name__ == "__main__":
    main()
