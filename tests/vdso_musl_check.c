/* A static musl program that shows musl's own clock_gettime and sched_getcpu
 * finding and calling minivmm's vDSO (test_vdso.cpp runs it). A process
 * cannot be started with another AT_SYSINFO_EHDR, but musl reads the
 * auxiliary vector only at its first clock call, so this program maps the
 * image given as argv[1] the way the guest loader does ([parameter page]
 * [image, r-x]), fills the page with a rough timeline of its own, and puts
 * the image's address into its auxiliary vector before that first call.
 * Then it moves the page's CLOCK_MONOTONIC by one second: musl's answer
 * moves too only if it came from the vDSO. Prints KEY VALUE lines. */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <minivmm/abi/vdso_data.h>

static int64_t syscall_ns(int clock) {
    struct timespec ts;
    syscall(SYS_clock_gettime, clock, &ts);
    return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint64_t rdtsc_ordered(void) {
    _mm_lfence();
    return __rdtsc();
}

int main(int argc, char** argv, char** envp) {
    static char image[1 << 16];
    int fd = argc == 2 ? open(argv[1], O_RDONLY) : -1;
    ssize_t size = fd < 0 ? -1 : read(fd, image, sizeof image);
    if (size <= 0 || size == sizeof image) {
        printf("error cannot read the image\n");
        return 1;
    }
    size_t pages = ((size_t)size + 4095) / 4096;
    char* page =
        mmap(0, 4096 * (1 + pages), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 1;
    memcpy(page + 4096, image, (size_t)size);
    if (mprotect(page + 4096, pages * 4096, PROT_READ | PROT_EXEC) != 0) return 1;

    volatile struct mvg_vdso_data* data = (void*)page;
    uint64_t tsc0 = rdtsc_ordered();
    int64_t mono0 = syscall_ns(CLOCK_MONOTONIC);
    usleep(20000);
    uint64_t tsc1 = rdtsc_ordered();
    int64_t mono1 = syscall_ns(CLOCK_MONOTONIC);
    data->monotonic.tsc_ref = tsc1;
    data->monotonic.base_ns = (uint64_t)mono1;
    data->monotonic.shift = 32;
    data->monotonic.mult = (uint64_t)(((unsigned __int128)(mono1 - mono0) << 32) / (tsc1 - tsc0));
    data->realtime_offset_ns = syscall_ns(CLOCK_REALTIME) - syscall_ns(CLOCK_MONOTONIC);
    data->getcpu_mode = MVG_VDSO_GETCPU_FIXED;
    data->cpu = 5;
    data->clock_mode = MVG_VDSO_CLOCK_TSC;

    char** end_of_env = envp;
    while (*end_of_env)
        ++end_of_env;
    int replaced = 0;
    for (Elf64_auxv_t* aux = (void*)(end_of_env + 1); aux->a_type != AT_NULL; ++aux) {
        if (aux->a_type == AT_SYSINFO_EHDR) {
            aux->a_un.a_val = (uint64_t)(page + 4096);
            replaced = 1;
        }
    }
    if (!replaced) {
        printf("error no AT_SYSINFO_EHDR to replace\n");
        return 1;
    }

    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 1;
    int64_t first = ts.tv_sec * 1000000000ll + ts.tv_nsec;
    printf("monotonic_error_ms %lld\n",
           (long long)((first - syscall_ns(CLOCK_MONOTONIC)) / 1000000));
    data->seq = 1;
    data->monotonic.base_ns += 1000000000ull;
    data->seq = 2;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 1;
    int64_t moved = ts.tv_sec * 1000000000ll + ts.tv_nsec;
    printf("moved_monotonic_ms %lld\n",
           (long long)((moved - syscall_ns(CLOCK_MONOTONIC)) / 1000000));
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 1;
    int64_t real = ts.tv_sec * 1000000000ll + ts.tv_nsec;
    printf("moved_realtime_ms %lld\n", (long long)((real - syscall_ns(CLOCK_REALTIME)) / 1000000));
    /* Not in the page: musl's clock_gettime makes the system call. */
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 1;
    printf("cputime_ok 1\n");
    printf("getcpu %d\n", sched_getcpu());
    return 0;
}
