/* The smallest useful guest: greets, echoes its command line, exits 0. */
#include <mvg/mvg.h>

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0; /* other vCPUs just halt */
    mvg_printf("Hello from minivmm guest: vcpu %u of %lu, %lu MiB RAM\n", vcpu, bi->nr_vcpus,
               bi->mem_size >> 20);
    const char* cmdline = mvg_cmdline(bi);
    if (cmdline[0]) mvg_printf("cmdline: %s\n", cmdline);
    return 0;
}
