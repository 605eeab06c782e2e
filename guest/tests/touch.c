/* Writes one word into each of the first N pages of the heap (N = cmdline,
 * default 1000), then prints "touch: N pages from 0x<heap_start>" and exits 0.
 * For dirty-logging tests that need many dirty pages (a full dirty ring). */
#include <mvg/mvg.h>

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    uint64_t n = 1000;
    const char* cmdline = mvg_cmdline(bi);
    if (cmdline[0] && !mvg_parse_u64(cmdline, &n)) {
        mvg_printf("touch: bad count '%s'\n", cmdline);
        return 2;
    }
    if (n > (bi->heap_end - bi->heap_start) / 4096) {
        mvg_printf("touch: %lu pages do not fit in the heap\n", n);
        return 2;
    }
    for (uint64_t i = 0; i < n; i++)
        *(volatile uint64_t*)(uintptr_t)(bi->heap_start + i * 4096) = i + 1;
    mvg_printf("touch: %lu pages from 0x%lx\n", n, bi->heap_start);
    return 0;
}
