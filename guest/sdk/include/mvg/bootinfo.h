/* The boot info table the VMM passes in RDI (guest ABI v1, guest-abi.md). */
#ifndef MVG_BOOTINFO_H
#define MVG_BOOTINFO_H

#include <mvg/defs.h>

/* The ABI names it "MINIVMM1"; its little-endian bytes spell "MNIVMMV1". */
#define MVG_BOOT_MAGIC 0x31564d4d56494e4dull
#define MVG_BOOT_VERSION 1

/* Later ABI versions only append fields, so a guest built for v1 runs on any
 * version >= 1; the offsets below are part of the contract. */
struct mvg_boot_info {
    uint64_t magic;      /*  0 */
    uint64_t version;    /*  8 */
    uint64_t mem_size;   /* 16: bytes of guest RAM */
    uint64_t nr_vcpus;   /* 24 */
    uint64_t tsc_khz;    /* 32: 0 if unknown */
    uint64_t heap_start; /* 40: first free byte after the image, page aligned */
    uint64_t heap_end;   /* 48: end of free RAM, exclusive */
    uint64_t cmdline;    /* 56: GPA of a NUL-terminated string, 0 if none */
};

#ifdef __cplusplus
static_assert(sizeof(struct mvg_boot_info) == 64, "boot info v1 is 64 bytes");
#else
_Static_assert(sizeof(struct mvg_boot_info) == 64, "boot info v1 is 64 bytes");
#endif

/* The command line, or "" when the VMM passed none. */
static inline const char* mvg_cmdline(const struct mvg_boot_info* bi) {
    return bi->cmdline ? (const char*)(uintptr_t)bi->cmdline : "";
}

MVG_EXTERN_C_BEGIN
/* Provided by the program. Runs on every vCPU at once. When it returns on
 * vCPU 0 the VM exits with the returned value; on any other vCPU the vCPU
 * halts (hypercall 16). C++ programs get C linkage from this declaration,
 * so include this header before defining main. */
int main(const struct mvg_boot_info* bi, unsigned vcpu);
MVG_EXTERN_C_END

#endif
