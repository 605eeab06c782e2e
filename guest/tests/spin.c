/* Never ends on its own: for tests of timeouts and of stopping a busy VM.
 * Every vCPU spins (none halts), so stopping must interrupt all of them. */
#include <mvg/mvg.h>

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    (void)bi;
    if (vcpu == 0) mvg_puts("spinning");
    /* Pure register loop: no memory access, no exits, no pause. */
    uint64_t n = 0;
    for (;;)
        __asm__ volatile("addq $1, %0" : "+r"(n));
}
