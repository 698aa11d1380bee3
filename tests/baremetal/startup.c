/*
 * startup.c: the smallest start for a Cortex-M4 under QEMU (mps2-an386): a vector table, a reset
 * handler that copies .data and clears .bss before main(), and output and exit through ARM
 * semihosting (QEMU's -semihosting), so a test needs no C library. A fault (a trap from the
 * library's default error handler, say) ends the run as a failure.
 */
#include "semihost.h"

#include <stdint.h>

extern uint32_t data_start[], data_end[], data_load[], bss_start[], bss_end[], stack_top[];
int main(void);
void reset_handler(void);
void fault_handler(void);

/* The semihosting call: operation in r0, argument in r1, the result back in r0. */
static int semihost_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_puts(const char *s)
{
    semihost_call(0x04, s); /* SYS_WRITE0 */
}

void semihost_exit(int status)
{
    /* SYS_EXIT with ADP_Stopped_ApplicationExit (QEMU exits 0) or RunTimeErrorUnknown (1). */
    semihost_call(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026 : 0x20023));
    for (;;) {
    }
}

void reset_handler(void)
{
    for (uint32_t *s = data_load, *d = data_start; d < data_end;)
        *d++ = *s++;
    for (uint32_t *d = bss_start; d < bss_end;)
        *d++ = 0;
    semihost_exit(main());
}

void fault_handler(void)
{
    semihost_puts("fault: the program trapped\n");
    semihost_exit(1);
}

/* Initial stack, then reset, NMI, HardFault, MemManage, BusFault, UsageFault. */
__attribute__((section(".vectors"), used)) static const struct {
    const void *stack;
    void (*handlers[6])(void);
} vectors = {
    stack_top,
    {reset_handler, fault_handler, fault_handler, fault_handler, fault_handler, fault_handler}};
