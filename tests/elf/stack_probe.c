/* A static program that reports the initial stack Linux built for it, for
 * tests/test_program_elf.cpp to compare with build_initial_stack's. Every
 * address is printed as its distance below the stack's top, which Linux
 * puts 8 bytes above the end of the AT_EXECFN string (the topmost one). */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

int main(int argc, char** argv, char** envp) {
    const char* execfn = (const char*)getauxval(AT_EXECFN);
    const uintptr_t top = (uintptr_t)execfn + strlen(execfn) + 1 + 8;
    /* At the entry point rsp held argc, just below argv[0]'s pointer. */
    printf("rsp %lu\n", (unsigned long)(top - ((uintptr_t)argv - 8)));
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; ++i)
        printf("argv %lu %s\n", (unsigned long)(top - (uintptr_t)argv[i]), argv[i]);
    char** e = envp;
    for (; *e != NULL; ++e)
        printf("envp %lu %s\n", (unsigned long)(top - (uintptr_t)*e), *e);
    /* The auxiliary vector follows envp's NULL. */
    for (const Elf64_auxv_t* a = (const Elf64_auxv_t*)(e + 1); a->a_type != AT_NULL; ++a)
        printf("auxv %lu %#lx\n", (unsigned long)a->a_type, (unsigned long)a->a_un.a_val);
    printf("auxv_at %lu\n", (unsigned long)(top - (uintptr_t)(e + 1)));
    printf("execfn %lu\n", (unsigned long)(top - (uintptr_t)execfn));
    printf("platform %lu\n", (unsigned long)(top - getauxval(AT_PLATFORM)));
    printf("random %lu\n", (unsigned long)(top - getauxval(AT_RANDOM)));
    return 0;
}
