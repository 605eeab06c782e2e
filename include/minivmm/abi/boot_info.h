/* Guest ABI v1: the boot info block, at the guest-physical address in RDI
 * when a vCPU starts (docs/guest-abi.md, "Boot info"). */
#ifndef MINIVMM_ABI_BOOT_INFO_H
#define MINIVMM_ABI_BOOT_INFO_H

#include "abi.h"

/* The ABI calls it "MINIVMM1"; stored little-endian its bytes spell
 * "MNIVMMV1". The number is what counts. */
#define MVG_BOOT_MAGIC 0x31564d4d56494e4dull
#define MVG_BOOT_VERSION MVG_ABI_VERSION

struct mvg_boot_info {
    uint64_t magic;      /* MVG_BOOT_MAGIC */
    uint64_t version;    /* MVG_BOOT_VERSION; a guest accepts any version >= the one it knows */
    uint64_t mem_size;   /* bytes of boot RAM */
    uint64_t nr_vcpus;   /* number of vCPUs */
    uint64_t tsc_khz;    /* TSC rate in kHz; 0 if unknown */
    uint64_t heap_start; /* first free byte after the image, page aligned */
    uint64_t heap_end;   /* end of free RAM, exclusive, page aligned (the stacks are above) */
    uint64_t cmdline;    /* guest-physical address of a NUL-terminated command line, 0 if none */
};
MVG_ABI_ASSERT(sizeof(struct mvg_boot_info) == 64, "boot info v1 is 64 bytes");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, version) == 8, "boot info: version at 8");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, mem_size) == 16, "boot info: mem_size at 16");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, nr_vcpus) == 24, "boot info: nr_vcpus at 24");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, tsc_khz) == 32, "boot info: tsc_khz at 32");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, heap_start) == 40, "boot info: heap_start at 40");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, heap_end) == 48, "boot info: heap_end at 48");
MVG_ABI_ASSERT(offsetof(struct mvg_boot_info, cmdline) == 56, "boot info: cmdline at 56");

#endif
