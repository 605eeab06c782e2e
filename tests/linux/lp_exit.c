/* lp_exit: how a program ends. argv[1] says how:
 *   a number N   exit_group(N): the status is N & 0xff
 *   segv         a store to address 0x1000: killed by SIGSEGV
 *   ill          ud2: killed by SIGILL
 *   fpe          an integer division by zero: killed by SIGFPE
 *   abort        abort(): killed by SIGABRT
 *   badptr       system calls given bad pointers fail with EFAULT (printed),
 *                then exit 0
 *   loop         spins forever, for a time limit to stop
 * Each prints one line saying what it does before doing it. */
#include "lp_common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A pointer the compiler cannot see through, so that it neither warns
 * about nor optimizes the bad accesses. */
static void* bad_pointer(uintptr_t address) {
    volatile uintptr_t a = address;
    return (void*)a;
}

static void bad_pointers(void) {
    void* bad = bad_pointer(8);
    CHECK_ERRNO(write(1, bad, 10), EFAULT, "write from address 8");
    /* /dev/zero has data at once (stdin might block or be at its end
     * before anything is copied) */
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open /dev/zero");
    CHECK_ERRNO(read(fd, bad, 10), EFAULT, "read to address 8");
    CHECK(close(fd) == 0, "close /dev/zero");
    CHECK_ERRNO(open((const char*)bad, O_RDONLY), EFAULT, "open of a path at address 8");
    /* the system calls themselves: musl's stat and clock_gettime copy
     * through a buffer of their own */
    CHECK_ERRNO(syscall(SYS_newfstatat, AT_FDCWD, "/", bad, 0), EFAULT,
                "newfstatat into address 8");
    CHECK_ERRNO(syscall(SYS_clock_gettime, 0, bad), EFAULT, "clock_gettime into address 8");
    CHECK_ERRNO(write(1, bad_pointer(~(uintptr_t)0 - 4), 10), EFAULT,
                "write from the top of the address space");
    CHECK_ERRNO(write(1, bad_pointer((uintptr_t)1 << 47), 10), EFAULT,
                "write from the first non-canonical address");
}

int main(int argc, char** argv) {
    lp_start();
    if (argc != 2) {
        printf("usage: lp_exit N|segv|ill|fpe|abort|badptr|loop\n");
        return 2;
    }
    const char* how = argv[1];
    if (strcmp(how, "segv") == 0) {
        printf("store to 0x1000\n");
        *(volatile int*)bad_pointer(0x1000) = 1;
    } else if (strcmp(how, "ill") == 0) {
        printf("ud2\n");
        __asm__ volatile("ud2");
    } else if (strcmp(how, "fpe") == 0) {
        printf("divide by zero\n");
        volatile int zero = 0, one = 1;
        one = one / zero;
    } else if (strcmp(how, "abort") == 0) {
        printf("abort\n");
        abort();
    } else if (strcmp(how, "badptr") == 0) {
        bad_pointers();
        printf("lp_exit: ok\n");
        return 0;
    } else if (strcmp(how, "loop") == 0) {
        printf("spin\n");
        for (volatile unsigned long n = 0;; n = n + 1) {
        }
    } else {
        char* end;
        long status = strtol(how, &end, 10);
        if (*how == '\0' || *end != '\0') {
            printf("lp_exit: '%s' is neither a number nor a way to end\n", how);
            return 2;
        }
        printf("exit_group(%ld)\n", status);
        syscall(SYS_exit_group, status);
    }
    printf("FAIL: still running after %s\n", how);
    return 1;
}
