/* sysbench-style "threads" test in a guest; see sb_guest.h and workloads/sb_threads.h. */
#include <mvg/mvg.h>

#include "sb_guest.h"

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    return sb_guest_main(bi, vcpu, SB_TEST_THREADS);
}
