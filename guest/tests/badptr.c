/* Makes one illegal hypercall named by the command line; the VMM must stop
 * the guest with an error instead of touching memory outside guest RAM.
 * Raw outl throughout: the SDK wrappers would bounce or refuse these. */
#include <mvg/mvg.h>

#define GiB4 (1ull << 32)

/* In .bss, i.e. inside the image below 4 GiB, so EAX can hold its address. */
static struct mvg_hc_write blk;

static uint32_t gpa(const void* p) {
    return (uint32_t)(uintptr_t)p;
}

/* A GPA that fits in EAX and lies outside RAM when RAM is below 4 GiB.
 * With >= 4 GiB of RAM, 0xFFFFFFF0 is outside RAM only if the VMM leaves a
 * hole below 4 GiB. */
static uint32_t outside(const struct mvg_boot_info* bi) {
    return bi->mem_size < GiB4 ? (uint32_t)bi->mem_size : 0xFFFFFFF0u;
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    const char* what = mvg_cmdline(bi);
    if (!strcmp(what, "write-buf-outside")) {
        blk.buf = bi->mem_size + 4096, blk.len = 16;
        mvg_hypercall_raw(MVG_HC_WRITE, gpa(&blk));
    } else if (!strcmp(what, "write-len-overflow")) {
        blk.buf = 0x100000, blk.len = 0xFFFFFFFFFFFFFF00ull; /* buf + len wraps */
        mvg_hypercall_raw(MVG_HC_WRITE, gpa(&blk));
    } else if (!strcmp(what, "write-len-beyond")) {
        blk.buf = 0x100000, blk.len = bi->mem_size - 0x100000 + 16; /* ends 16 B past RAM */
        mvg_hypercall_raw(MVG_HC_WRITE, gpa(&blk));
    } else if (!strcmp(what, "block-outside")) {
        mvg_hypercall_raw(MVG_HC_WRITE, outside(bi)); /* the block itself is outside */
    } else if (!strcmp(what, "block-straddle")) {
        if (bi->mem_size >= GiB4) {
            mvg_printf("badptr: block-straddle needs less than 4 GiB of RAM\n");
            return 4;
        }
        /* A 16-byte write block whose last 8 bytes are past the end of RAM. */
        mvg_hypercall_raw(MVG_HC_WRITE, (uint32_t)(bi->mem_size - 8));
    } else if (!strcmp(what, "exit-outside")) {
        mvg_hypercall_raw(MVG_HC_EXIT, outside(bi));
    } else {
        mvg_printf("usage: badptr write-buf-outside|write-len-overflow|write-len-beyond|"
                   "block-outside|block-straddle|exit-outside (got '%s')\n",
                   what);
        return 2;
    }
    mvg_printf("badptr: VMM did not stop the guest\n");
    return 3;
}
