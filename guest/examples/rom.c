/* Reads a ROM the VMM mapped, tries to write it, and dirties a few pages.
 * Command line: the ROM's guest-physical address in hex, e.g. "0x800000".
 * Prints the ROM's NUL-terminated text, whether the write was ignored, and
 * the pages it wrote; exits 0 when the ROM stayed unchanged, 1 otherwise. */
#include <mvg/mvg.h>

static uint64_t parse_hex(const char* s) {
    uint64_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
    for (; *s; s++) {
        char c = *s;
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return 0;
        v = v * 16 + d;
    }
    return v;
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    uint64_t rom = parse_hex(mvg_cmdline(bi));
    if (rom == 0) {
        mvg_printf("rom: give the ROM address, e.g. -- 0x800000\n");
        return 2;
    }
    volatile char* p = (volatile char*)(uintptr_t)rom;
    mvg_printf("rom: reads \"%s\"\n", (const char*)(uintptr_t)rom);
    char before = p[0];
    p[0] = 'X'; /* KVM_MEM_READONLY: this exits to the VMM, which drops it */
    int unchanged = p[0] == before;
    mvg_printf("rom: write %s\n", unchanged ? "ignored, ROM unchanged" : "CHANGED the ROM");
    for (uint64_t i = 0; i < 3; i++) {
        volatile uint64_t* page = (volatile uint64_t*)(uintptr_t)(bi->heap_start + i * 0x10000);
        *page = i + 1;
        mvg_printf("rom: wrote page 0x%lx\n", (uint64_t)(uintptr_t)page);
    }
    return unchanged ? 0 : 1;
}
