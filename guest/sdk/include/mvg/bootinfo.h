/* The boot info table the VMM passes in RDI (guest ABI v1, docs/guest-abi.md;
 * its layout is minivmm/abi/boot_info.h). */
#ifndef MVG_BOOTINFO_H
#define MVG_BOOTINFO_H

#include <minivmm/abi/boot_info.h> /* struct mvg_boot_info, MVG_BOOT_MAGIC */
#include <mvg/defs.h>

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
