/* The guest ABI's layouts as a C compiler sees them (guests are C), for
 * test_abi.cpp to compare with what the C++ compiler of the VMM sees. Built
 * with -std=c11 -pedantic-errors: the headers must be plain C11. */
#include <minivmm/abi/block.h>
#include <minivmm/abi/boot_info.h>
#include <minivmm/abi/hypercall.h>
#include <minivmm/abi/vdso_data.h>

#include "abi_layout.h"

#define SZ(t) sizeof(struct t)
#define OFF(t, f) offsetof(struct t, f)

const uint64_t mvg_abi_c_layout[] = {MVG_ABI_LAYOUT_ITEMS};
const size_t mvg_abi_c_layout_count = sizeof mvg_abi_c_layout / sizeof mvg_abi_c_layout[0];
