/* Every size, offset and number of the guest ABI, as one list that
 * abi_layout.c (C) and test_abi.cpp (C++) both expand with their own SZ and
 * OFF. */
#ifndef MINIVMM_TESTS_ABI_LAYOUT_H
#define MINIVMM_TESTS_ABI_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define MVG_ABI_LAYOUT_ITEMS                                                                       \
    MVG_ABI_VERSION, MVG_RESERVED_END, MVG_IMAGE_BASE, MVG_BOOT_MAGIC, MVG_BOOT_VERSION,           \
        SZ(mvg_boot_info), OFF(mvg_boot_info, magic), OFF(mvg_boot_info, version),                 \
        OFF(mvg_boot_info, mem_size), OFF(mvg_boot_info, nr_vcpus), OFF(mvg_boot_info, tsc_khz),   \
        OFF(mvg_boot_info, heap_start), OFF(mvg_boot_info, heap_end), OFF(mvg_boot_info, cmdline), \
        MVG_HC_PORT_BASE, MVG_HC_PORT_COUNT, MVG_HC_WRITE, MVG_HC_EXIT, MVG_HC_HALT, MVG_HC_YIELD, \
        MVG_HC_MEM_MAP, MVG_HC_MEM_CLAIM, SZ(mvg_hc_write), OFF(mvg_hc_write, len),                \
        SZ(mvg_hc_exit), SZ(mvg_hc_halt), SZ(mvg_hc_yield), SZ(mvg_hc_mem_map),                    \
        OFF(mvg_hc_mem_map, cap), OFF(mvg_hc_mem_map, count), OFF(mvg_hc_mem_map, generation),     \
        SZ(mvg_mem_region), OFF(mvg_mem_region, size), OFF(mvg_mem_region, flags),                 \
        MVG_MEM_REGION_CLAIMED, SZ(mvg_hc_mem_claim), OFF(mvg_hc_mem_claim, claim),                \
        OFF(mvg_hc_mem_claim, status), MVG_MEM_CLAIM_OK, MVG_MEM_CLAIM_NO_REGION,                  \
        MVG_MEM_CLAIM_BAD_VALUE, BLK_HC_INFO, BLK_HC_IO, BLK_HC_RING_SETUP, BLK_HC_KICK,           \
        BLK_SECTOR_SIZE, BLK_FLAG_READONLY, BLK_FLAG_RING, BLK_OP_READ, BLK_OP_WRITE,              \
        BLK_OP_FLUSH, BLK_OK, BLK_E_BAD_OP, BLK_E_RANGE, BLK_E_BUFFER, BLK_E_IO, BLK_E_READONLY,   \
        BLK_E_LENGTH, BLK_E_BAD_RING, BLK_E_BAD_QUEUE, BLK_PENDING, BLK_RING_MAX_ENTRIES,          \
        SZ(blk_info), OFF(blk_info, flags), SZ(blk_io), OFF(blk_io, sector), OFF(blk_io, buf),     \
        OFF(blk_io, len), OFF(blk_io, status), SZ(blk_ring_setup), OFF(blk_ring_setup, entries),   \
        OFF(blk_ring_setup, queue), OFF(blk_ring_setup, status), SZ(blk_ring_header),              \
        OFF(blk_ring_header, queue), OFF(blk_ring_header, sq_tail), OFF(blk_ring_header, sq_head), \
        OFF(blk_ring_header, need_kick), SZ(blk_ring_entry), OFF(blk_ring_entry, sector),          \
        OFF(blk_ring_entry, buf), OFF(blk_ring_entry, len), OFF(blk_ring_entry, status),           \
        OFF(blk_ring_entry, tag), MVG_VDSO_DATA_SIZE, MVG_VDSO_CLOCK_NONE, MVG_VDSO_CLOCK_TSC,     \
        MVG_VDSO_GETCPU_SYSCALL, MVG_VDSO_GETCPU_FIXED, MVG_VDSO_GETCPU_RDTSCP,                    \
        MVG_VDSO_CLOCK_REALTIME, MVG_VDSO_CLOCK_MONOTONIC, MVG_VDSO_CLOCK_MONOTONIC_RAW,           \
        MVG_VDSO_CLOCK_REALTIME_COARSE, MVG_VDSO_CLOCK_MONOTONIC_COARSE, MVG_VDSO_CLOCK_BOOTTIME,  \
        SZ(mvg_vdso_timeline), OFF(mvg_vdso_timeline, tsc_ref), OFF(mvg_vdso_timeline, base_ns),   \
        OFF(mvg_vdso_timeline, base_frac), OFF(mvg_vdso_timeline, mult),                           \
        OFF(mvg_vdso_timeline, shift), OFF(mvg_vdso_timeline, slew_ticks),                         \
        OFF(mvg_vdso_timeline, slew_mult), SZ(mvg_vdso_data), OFF(mvg_vdso_data, seq),             \
        OFF(mvg_vdso_data, clock_mode), OFF(mvg_vdso_data, monotonic),                             \
        OFF(mvg_vdso_data, monotonic_raw), OFF(mvg_vdso_data, realtime_offset_ns),                 \
        OFF(mvg_vdso_data, boottime_offset_ns), OFF(mvg_vdso_data, coarse_res_ns),                 \
        OFF(mvg_vdso_data, coarse_phase_ns), OFF(mvg_vdso_data, hres_res_ns),                      \
        OFF(mvg_vdso_data, tz_minuteswest), OFF(mvg_vdso_data, tz_dsttime),                        \
        OFF(mvg_vdso_data, getcpu_mode), OFF(mvg_vdso_data, cpu), OFF(mvg_vdso_data, node)

#ifdef __cplusplus
extern "C" {
#endif
extern const uint64_t mvg_abi_c_layout[];
extern const size_t mvg_abi_c_layout_count;
#ifdef __cplusplus
}
#endif

#endif
