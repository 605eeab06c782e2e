/* The guest side of memory hotplug, driven by a test over the control socket:
 *   1. waits for hot-added RAM (hypercall 22), claims the first region A
 *      (hypercall 23), writes a word into every 4 KiB page of it and reads
 *      them all back;
 *   2. waits for the next change of the generation (the test adds a region
 *      B: "let go"), releases A;
 *   3. waits until A is no longer listed (the test removed it) and exits 0.
 * With the command line "touch-after" it then reads A once more, which must
 * fault (the VMM stops the guest with a page fault inside A). Other vCPUs
 * keep writing their stacks meanwhile, so slots change under running vCPUs. */
#include <mvg/mvg.h>

#define MAX_REGIONS 8

static struct mvg_mem_region regions[MAX_REGIONS];
static volatile uint64_t done;
volatile uint64_t scratch[64]; /* what the other vCPUs write */

static struct mvg_hc_mem_map mem_map(void) {
    struct mvg_hc_mem_map m = {(uint64_t)(uintptr_t)regions, MAX_REGIONS, 0, 0};
    mvg_hypercall(MVG_HC_MEM_MAP, &m, sizeof m);
    return m;
}

static uint64_t claim(uint64_t gpa, uint64_t on) {
    struct mvg_hc_mem_claim c = {gpa, on, 99};
    mvg_hypercall(MVG_HC_MEM_CLAIM, &c, sizeof c);
    return c.status;
}

static void pause_a_while(void) {
    for (int i = 0; i < 2000; i++)
        __builtin_ia32_pause();
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) {
        uint64_t n = 0;
        while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
            scratch[n % 64] = n;
            n++;
        }
        return 0;
    }
    mvg_printf("hotplug: ready\n");
    struct mvg_hc_mem_map m = mem_map();
    while (m.count == 0) {
        pause_a_while();
        m = mem_map();
    }
    const uint64_t gpa = regions[0].gpa, size = regions[0].size, gen = m.generation;
    if (claim(gpa, 1) != 0) {
        mvg_printf("hotplug: claim of 0x%lx failed\n", gpa);
        mvg_exit(1);
    }
    if (claim(gpa + 0x1000, 1) != 1 || claim(gpa, 7) != 2) {
        mvg_printf("hotplug: bad claims were not refused\n");
        mvg_exit(1);
    }
    for (uint64_t off = 0; off < size; off += 0x1000)
        *(volatile uint64_t*)(uintptr_t)(gpa + off) = (gpa + off) ^ 0x5eed5eed5eed5eedull;
    uint64_t bad = 0;
    for (uint64_t off = 0; off < size; off += 0x1000)
        if (*(volatile uint64_t*)(uintptr_t)(gpa + off) != ((gpa + off) ^ 0x5eed5eed5eed5eedull))
            bad++;
    mvg_printf("hotplug: using 0x%lx size 0x%lx: %lu pages written, %lu bad\n", gpa, size,
               size / 0x1000, bad);
    if (bad != 0) mvg_exit(1);
    while (mem_map().generation == gen)
        pause_a_while();
    claim(gpa, 0);
    mvg_printf("hotplug: released 0x%lx\n", gpa);
    for (;;) {
        m = mem_map();
        int listed = 0;
        for (uint64_t i = 0; i < m.count && i < MAX_REGIONS; i++)
            if (regions[i].gpa == gpa) listed = 1;
        if (!listed) break;
        pause_a_while();
    }
    mvg_printf("hotplug: gone 0x%lx\n", gpa);
    const char* cmd = mvg_cmdline(bi);
    if (cmd != 0 && strcmp(cmd, "touch-after") == 0) {
        uint64_t v = *(volatile uint64_t*)(uintptr_t)gpa; /* must fault */
        mvg_printf("hotplug: read 0x%lx after removal and got 0x%lx\n", gpa, v);
        mvg_exit(2);
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    mvg_exit(0);
}
