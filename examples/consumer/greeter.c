/* A guest image built out of tree with the installed guest SDK: greets with
 * its command line and exits with status 42. */
#include <mvg/mvg.h>

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    mvg_printf("greeter: %lu vcpu(s), cmdline '%s'\n", bi->nr_vcpus, mvg_cmdline(bi));
    return 42;
}
