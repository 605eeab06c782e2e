/* Hypercall wrappers with bouncing of argument blocks that lie above 4 GiB. */
#include <mvg/mvg.h>

/* One slot per concurrently running hypercall; a vCPU has at most one in
 * flight (no interrupts), so with <= MVG_BOUNCE_SLOTS vCPUs nobody waits.
 * The pool is in .bss, i.e. inside the image at ~1 MiB: always below 4 GiB. */
#define MVG_BOUNCE_SLOTS 64

struct bounce_slot {
    _Alignas(64) unsigned char data[MVG_HC_MAX_BLOCK];
};
static struct bounce_slot bounce[MVG_BOUNCE_SLOTS];
static uint8_t bounce_busy[MVG_BOUNCE_SLOTS];

static unsigned claim_slot(void) {
    for (;;) {
        for (unsigned i = 0; i < MVG_BOUNCE_SLOTS; i++) {
            uint8_t expected = 0;
            if (__atomic_compare_exchange_n(&bounce_busy[i], &expected, 1, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return i;
        }
        mvg_pause();
    }
}

void mvg_hypercall(unsigned nr, void* block, size_t size) {
    uintptr_t gpa = (uintptr_t)block;
    if (gpa + size <= (1ull << 32)) { /* common case: the block is usable as is */
        mvg_hypercall_raw(nr, (uint32_t)gpa);
        return;
    }
    if (size > MVG_HC_MAX_BLOCK) mvg_exit(120); /* SDK misuse; exit's own block is small enough */
    unsigned i = claim_slot();
    __builtin_memcpy(bounce[i].data, block, size);
    mvg_hypercall_raw(nr, (uint32_t)(uintptr_t)bounce[i].data);
    __builtin_memcpy(block, bounce[i].data, size); /* results, if the call has any */
    __atomic_store_n(&bounce_busy[i], 0, __ATOMIC_RELEASE);
}

void mvg_write(const void* buf, size_t len) {
    struct mvg_hc_write w = {(uint64_t)(uintptr_t)buf, len};
    mvg_hypercall(MVG_HC_WRITE, &w, sizeof w);
}

MVG_NORETURN void mvg_exit(uint64_t code) {
    struct mvg_hc_exit e = {code};
    mvg_hypercall(MVG_HC_EXIT, &e, sizeof e);
    for (;;) /* the VMM does not resume us; never fall through if it does */
        mvg_pause();
}

MVG_NORETURN void mvg_halt(void) {
    /* A constant block in .rodata (below 4 GiB): a halted vCPU never returns
     * to release a bounce slot, so halting must not take one. */
    static const struct mvg_hc_halt h = {0};
    mvg_hypercall_raw(MVG_HC_HALT, (uint32_t)(uintptr_t)&h);
    for (;;)
        mvg_pause();
}

void mvg_yield(void) {
    /* The VMM only checks that the block is in RAM: one constant block for
     * every vCPU, no bounce slot to take. */
    static const struct mvg_hc_yield y = {0};
    mvg_hypercall_raw(MVG_HC_YIELD, (uint32_t)(uintptr_t)&y);
}
