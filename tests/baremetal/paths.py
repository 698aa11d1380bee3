#!/usr/bin/env python3
"""paths.py TRACE ELF_DISASSEMBLY: the instructions, and an upper bound of the cycles, that each
path of tests/baremetal/paths.c took, from QEMU's trace of every instruction (-singlestep -d
exec,nochain) and the program's disassembly (arm-none-eabi-objdump -d).

The trace is cut at each entry to path_mark(); the names are those paths.c passes, in its order.
The cost of an empty region (the mark calls themselves) is taken off each path. Cycles are
bounded with the Cortex-M4's timings (Technical Reference Manual, "Processor instructions"),
taken pessimistically, with no wait states: a load or a store 2, a double one 3, LDM/STM/PUSH/POP
1 + registers, a taken branch (or a write to pc) 1 + 3, a divide 12, everything else 1.
"""
import re
import sys

NAMES = ["empty", "alloc: bump (inline carve)", "free: push", "alloc: pop", "free: NULL",
         "end", "alloc: buffer used up (fold the inline carves, fail with ENOMEM)",
         "alloc: used up again (fail with ENOMEM)", "alloc: capacity reached (fail with ENOMEM)"]


def instructions(disassembly):
    """pc -> (size in bytes, mnemonic, operands)."""
    table = {}
    for line in open(disassembly):
        m = re.match(r"\s*([0-9a-f]+):\s+([0-9a-f]{4})(?: ([0-9a-f]{4}))?\s+(\S+)\s*(.*)", line)
        if m:
            size = 4 if m.group(3) else 2
            table[int(m.group(1), 16)] = (size, m.group(4), m.group(5))
    return table


def cycles(insn, taken):
    size, op, args = insn
    op = op.split(".")[0]
    base = re.sub(r"(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)$", "", op)
    if base in ("pop", "push") or base.startswith(("ldm", "stm")):
        n = len(re.findall(r"r\d+|lr|pc|sp|fp|ip|sl|sb", args.split("{")[-1]))
        return 1 + n + (3 if "pc" in args and base != "push" else 0)
    if base in ("ldrd", "strd"):
        return 3
    if base.startswith(("ldr", "str")):
        return 2 + (3 if args.startswith("pc") else 0)
    if base in ("udiv", "sdiv"):
        return 12
    if base in ("b", "bl", "bx", "blx", "cbz", "cbnz") or args.startswith("pc,"):
        return 4 if taken else 1
    return 1


def main():
    trace, disassembly = sys.argv[1], sys.argv[2]
    table = instructions(disassembly)
    pcs = []
    marks = []
    for line in open(trace):
        m = re.match(r"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/", line)
        if not m:
            continue
        pc = int(m.group(1), 16) & ~1
        if line.rstrip().endswith(" path_mark"):
            marks.append(len(pcs))
        pcs.append(pc)
    regions = []
    for k in range(len(marks) - 1):
        n = c = 0
        for i in range(marks[k], marks[k + 1]):
            insn = table.get(pcs[i], (2, "?", ""))
            taken = pcs[i + 1] != pcs[i] + insn[0]
            n += 1
            c += cycles(insn, taken)
        regions.append((n, c))
    base_n, base_c = regions[0]
    print("path | instructions | cycles at most (Cortex-M4, no wait states)")
    for k, (n, c) in enumerate(regions):
        if k < len(NAMES) and NAMES[k] not in ("empty", "end"):
            print(f"{NAMES[k]} | {n - base_n} | {c - base_c}")


main()
