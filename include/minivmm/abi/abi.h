/* minivmm guest ABI, version 1: what every header in minivmm/abi/ shares.
 *
 * These C headers are the one source of the guest ABI's numbers and layouts
 * (docs/guest-abi.md is the normative text): guests include them through the
 * guest SDK (the mvg headers and blk.h), the VMM through minivmm/boot_info.hpp,
 * minivmm/hypercall.hpp and minivmm/block_abi.hpp. C11 or later, or C++;
 * freestanding (stdint.h and stddef.h only). Every structure is little-endian,
 * made of 8-byte fields, with its size and offsets asserted below it. */
#ifndef MINIVMM_ABI_ABI_H
#define MINIVMM_ABI_ABI_H

#include <stddef.h>
#include <stdint.h>

/* The ABI version this tree implements (boot info `version`). Later
 * versions only append fields and add hypercall numbers. */
#define MVG_ABI_VERSION 1

#ifdef __cplusplus
#define MVG_ABI_ASSERT(cond, why) static_assert(cond, why)
#else
#define MVG_ABI_ASSERT(cond, why) _Static_assert(cond, why)
#endif

/* Guest-physical layout the guest may rely on. */
#define MVG_RESERVED_END 0x100000ull /* [0, 1 MiB): the VMM's, read-only for the guest */
#define MVG_IMAGE_BASE 0x100000ull   /* a flat image loads here and starts at its first byte */

#endif
