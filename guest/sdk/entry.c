/* mvg_entry: from _start to main, plus the little C++ runtime support. */
#include <mvg/mvg.h>

typedef void (*mvg_ctor_fn)(void);
/* Bounds of .init_array, from guest.ld. */
extern mvg_ctor_fn __init_array_start[], __init_array_end[];

/* Set by vCPU 0 once static constructors have run. */
static uint64_t ctors_done;

static void run_ctors(void) {
    /* Compare as integers: the two symbols are distinct objects to the
     * compiler, which may fold a pointer comparison between them. */
    uintptr_t n =
        ((uintptr_t)__init_array_end - (uintptr_t)__init_array_start) / sizeof(mvg_ctor_fn);
    for (uintptr_t i = 0; i < n; i++)
        __init_array_start[i]();
}

MVG_NORETURN void mvg_entry(const struct mvg_boot_info* bi, uint64_t vcpu);

MVG_NORETURN void mvg_entry(const struct mvg_boot_info* bi, uint64_t vcpu) {
    /* Checked first so a VMM/guest ABI mismatch fails loudly, not randomly. */
    if (bi == NULL || bi->magic != MVG_BOOT_MAGIC || bi->version < MVG_BOOT_VERSION) mvg_exit(121);
    /* All vCPUs start at once; constructors must run exactly once and before
     * any main(). .bss comes zeroed in the image, so no clearing is needed. */
    if (vcpu == 0) {
        run_ctors();
        mvg_atomic_store(&ctors_done, 1);
    } else {
        mvg_wait_ge(&ctors_done, 1);
    }
    int rc = main(bi, (unsigned)vcpu);
    if (vcpu == 0) mvg_exit((uint64_t)(int64_t)rc); /* sign-extend: exit(-1) -> 255 */
    mvg_halt();
}

/* C++ support, defined here in C so C-only guests need no C++ compiler.
 * Static destructors never run (the VM just stops), so registering them is a
 * no-op; pure virtual calls and deleting destructors (there is no heap) are
 * bugs and end the VM with distinctive codes. */
void* __dso_handle;
int __cxa_atexit(void (*fn)(void*), void* arg, void* dso);
int __cxa_atexit(void (*fn)(void*), void* arg, void* dso) {
    (void)fn, (void)arg, (void)dso;
    return 0;
}
void __cxa_pure_virtual(void);
void __cxa_pure_virtual(void) {
    mvg_exit(122);
}
void mvg_operator_delete(void* p) __asm__("_ZdlPv");                  /* delete(void*) */
void mvg_operator_delete_sized(void* p, size_t n) __asm__("_ZdlPvm"); /* (void*, size_t) */
void mvg_operator_delete(void* p) {
    (void)p;
    mvg_exit(123);
}
void mvg_operator_delete_sized(void* p, size_t n) {
    (void)p, (void)n;
    mvg_exit(123);
}
