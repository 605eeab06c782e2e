/* lp_hello: output, the command line and the environment, the auxiliary
 * vector. Prints "hello, world" with write(2) and with printf, argc and each
 * argument (argv[0] as its last path component), the environment variables
 * that start with LP_, then what the auxiliary vector holds, checked against
 * the program's own ELF headers (AT_BASE: 0, or the interpreter's). With
 * LP_EXPECT_VDSO=yes or no, also whether a vDSO is mapped ("vdso: yes"),
 * failing if that is not what was expected. */
#include "lp_common.h"

#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <unistd.h>

/* Defined by the linker at the first byte of the loaded ELF header. */
extern const ElfW(Ehdr) __ehdr_start;
/* The entry point, from crt1.o (rcrt1.o for static-pie). */
extern char _start[];

static int phdr_callback(struct dl_phdr_info* info, size_t size, void* data) {
    (void)size;
    const ElfW(Phdr)** first = data;
    if (*first == NULL) *first = info->dlpi_phdr; /* the program itself comes first */
    return 0;
}

/* Stops at the loaded object whose load address is *data. */
static int base_callback(struct dl_phdr_info* info, size_t size, void* data) {
    (void)size;
    return info->dlpi_addr == *(const ElfW(Addr)*)data;
}

/* AT_BASE is the interpreter's load address: 0 for a static program (also a
 * static-pie), else an ELF shared object (ld.so) that dl_iterate_phdr
 * reports among the loaded objects. */
static void check_base(const ElfW(Phdr) * phdr) {
    int dynamic = 0;
    for (unsigned i = 0; i < __ehdr_start.e_phnum; ++i)
        dynamic |= phdr[i].p_type == PT_INTERP;
    const ElfW(Addr) base = getauxval(AT_BASE);
    if (!dynamic) {
        CHECK(base == 0, "AT_BASE is 0 without an interpreter");
    } else {
        const ElfW(Ehdr)* interp = (const ElfW(Ehdr)*)base;
        CHECK(interp != NULL, "AT_BASE is set with an interpreter");
        CHECK(memcmp(interp->e_ident, ELFMAG, SELFMAG) == 0 && interp->e_type == ET_DYN,
              "AT_BASE is an ELF shared object's header");
        CHECK(dl_iterate_phdr(base_callback, (void*)&base) == 1,
              "dl_iterate_phdr reports an object loaded at AT_BASE");
    }
    printf("base: %s\n", dynamic ? "interpreter" : "none");
}

static void check_auxv(void) {
    CHECK(getauxval(AT_PAGESZ) == 4096, "AT_PAGESZ is 4096");
    printf("pagesz: %lu\n", getauxval(AT_PAGESZ));

    const unsigned char* random = (const unsigned char*)getauxval(AT_RANDOM);
    CHECK(random != NULL, "AT_RANDOM is present");
    unsigned any = 0;
    for (int i = 0; i < 16; ++i) /* its 16 bytes are readable */
        any |= random[i];
    CHECK(any != 0, "AT_RANDOM's 16 bytes are not all zero");
    printf("random: ok\n");

    /* AT_PHDR and AT_PHNUM are this program's headers, as the linker laid
     * them out behind the ELF header (relocated for a static-pie). */
    const ElfW(Phdr)* phdr = (const ElfW(Phdr)*)getauxval(AT_PHDR);
    CHECK(memcmp(__ehdr_start.e_ident, ELFMAG, SELFMAG) == 0, "__ehdr_start is an ELF header");
    CHECK(phdr == (const ElfW(Phdr)*)((const char*)&__ehdr_start + __ehdr_start.e_phoff),
          "AT_PHDR is the ELF header's e_phoff");
    CHECK(getauxval(AT_PHNUM) == __ehdr_start.e_phnum, "AT_PHNUM is the ELF header's e_phnum");
    CHECK(getauxval(AT_PHENT) == sizeof(ElfW(Phdr)), "AT_PHENT is sizeof(Elf64_Phdr)");
    int has_load = 0;
    for (unsigned i = 0; i < __ehdr_start.e_phnum; ++i)
        has_load |= phdr[i].p_type == PT_LOAD;
    CHECK(has_load, "AT_PHDR's headers include a PT_LOAD");
    const ElfW(Phdr)* iterated = NULL;
    dl_iterate_phdr(phdr_callback, &iterated);
    CHECK(iterated == phdr, "dl_iterate_phdr reports AT_PHDR");
    printf("phdr: ok\n");
    check_base(phdr);

    CHECK(getauxval(AT_ENTRY) == (unsigned long)(uintptr_t)_start, "AT_ENTRY is _start");
    printf("entry: ok\n");

    const char* execfn = (const char*)getauxval(AT_EXECFN);
    CHECK(execfn != NULL && strlen(execfn) > 0, "AT_EXECFN is a non-empty string");
    printf("execfn: ok\n");

    CHECK(getauxval(AT_UID) == (unsigned long)getuid() &&
              getauxval(AT_EUID) == (unsigned long)geteuid() &&
              getauxval(AT_GID) == (unsigned long)getgid() &&
              getauxval(AT_EGID) == (unsigned long)getegid(),
          "AT_UID, AT_EUID, AT_GID, AT_EGID are the process's ids");
    CHECK(getauxval(AT_SECURE) == 0, "AT_SECURE is 0");
    printf("ids: ok\n");

    const char* expect = getenv("LP_EXPECT_VDSO");
    if (expect != NULL) {
        const unsigned char* vdso = (const unsigned char*)getauxval(AT_SYSINFO_EHDR);
        int want = strcmp(expect, "yes") == 0;
        CHECK(want || strcmp(expect, "no") == 0, "LP_EXPECT_VDSO is yes or no");
        CHECK(vdso == NULL || memcmp(vdso, ELFMAG, SELFMAG) == 0,
              "AT_SYSINFO_EHDR points to an ELF header");
        printf("vdso: %s\n", vdso != NULL ? "yes" : "no");
        CHECK((vdso != NULL) == want, "the vDSO is there as LP_EXPECT_VDSO says");
    }
}

int main(int argc, char** argv, char** envp) {
    lp_start();
    static const char hello[] = "hello, world\n";
    CHECK(write(1, hello, sizeof hello - 1) == (ssize_t)(sizeof hello - 1), "write(2) to stdout");
    printf("hello, world (printf %d)\n", 42);

    printf("argc: %d\n", argc);
    CHECK(argc >= 1 && argv[argc] == NULL, "argv ends with NULL after argc entries");
    const char* base = strrchr(argv[0], '/');
    printf("argv[0]: %s\n", base != NULL ? base + 1 : argv[0]);
    for (int i = 1; i < argc; ++i)
        printf("argv[%d]: %s\n", i, argv[i]);
    for (char** e = envp; *e != NULL; ++e)
        if (strncmp(*e, "LP_", 3) == 0) printf("env: %s\n", *e);
    CHECK(environ == envp, "environ is main's envp");

    check_auxv();
    printf("lp_hello: ok\n");
    return 0;
}
