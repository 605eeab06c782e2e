/* Exits with the number on the command line (default 0), silently. The full
 * 64-bit value goes to the exit hypercall; the VMM reports code & 0xff. */
#include <mvg/mvg.h>

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    uint64_t code = 0;
    const char* cmdline = mvg_cmdline(bi);
    if (cmdline[0] && !mvg_parse_u64(cmdline, &code)) {
        mvg_printf("exitcode: bad number '%s'\n", cmdline);
        return 2;
    }
    mvg_exit(code);
}
