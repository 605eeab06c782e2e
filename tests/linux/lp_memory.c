/* lp_memory: the memory system calls. brk through sbrk, anonymous mmap,
 * MAP_FIXED and MAP_FIXED_NOREPLACE, munmap, mprotect (a read-only page is
 * checked by a read(2) into it failing with EFAULT, never by a faulting
 * store), mremap, madvise(MADV_DONTNEED), a private mapping of a file, a
 * 64 MiB malloc, and the errors of bad arguments. Writes lp_memory.dat in
 * the current directory and removes it. */
#include "lp_common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096ul

static void fill(unsigned char* p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; ++i)
        p[i] = (unsigned char)(seed + i * 7);
}

static int filled(const unsigned char* p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; ++i)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static int zero(const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i] != 0) return 0;
    return 1;
}

static unsigned char* map_anon(size_t len) {
    void* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap anonymous");
    return p;
}

/* The program break, moved with the brk system call itself: musl's sbrk
 * refuses any increment but 0. */
static char* brk_to(char* address) {
    return (char*)syscall(SYS_brk, address);
}

static void check_brk(void) {
    /* Nothing may call malloc between the grow and the shrink (malloc may
     * move the break too), so the facts are printed afterwards. */
    char* base = brk_to(NULL);
    CHECK(base == sbrk(0), "brk(0) is sbrk(0)"); /* glibc's sbrk keeps its own copy */
    CHECK(brk_to(base + 64 * 1024) == base + 64 * 1024, "brk grows by 64 KiB");
    int fresh_zero = zero((unsigned char*)base, 64 * 1024);
    memset(base, 0x5a, 64 * 1024);
    CHECK(brk_to(base + 32 * 1024) == base + 32 * 1024, "brk shrinks by 32 KiB");
    int kept = base[32 * 1024 - 1] == 0x5a;
    CHECK(brk_to(base) == base, "brk back to the start");
#ifdef __GLIBC__
    /* glibc's sbrk moves it too */
    CHECK(sbrk(8192) == base && sbrk(0) == base + 8192, "sbrk(8192)");
    memset(base, 0x5a, 8192);
    CHECK(sbrk(-8192) == base + 8192 && sbrk(0) == base, "sbrk(-8192)");
#endif
    CHECK(fresh_zero, "new brk memory reads zero");
    CHECK(kept, "shrinking keeps what is below the break");
    /* The break is not moved into a mapping: Linux refuses and returns the
     * old break (brk's failure is not -1). */
    char* above = mmap(base + 1024 * 1024, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(above == base + 1024 * 1024 || (above == MAP_FAILED && errno == EEXIST),
          "mmap 1 MiB above the break (or something is there already)");
    CHECK(brk_to(base + 2 * 1024 * 1024) == base, "brk across a mapping fails");
    if (above != MAP_FAILED) CHECK(munmap(above, 4096) == 0, "munmap");
    printf("brk grows: ok\nbrk shrinks: ok\nbrk into a mapping: refused\n");
}

static void check_mmap(void) {
    unsigned char* p = map_anon(4 * PAGE);
    CHECK(zero(p, 4 * PAGE), "anonymous memory reads zero");
    fill(p, 4 * PAGE, 1);
    CHECK(filled(p, 4 * PAGE, 1), "anonymous memory keeps what was written");
    printf("mmap anonymous: zero, then written: ok\n");

    /* MAP_FIXED over the second page: a fresh zero page there, the rest kept. */
    void* q = mmap(p + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                   -1, 0);
    CHECK(q == p + PAGE, "MAP_FIXED maps at the address");
    CHECK(zero(p + PAGE, PAGE), "MAP_FIXED replaced the page");
    CHECK(filled(p, PAGE, 1) && filled(p + 2 * PAGE, 2 * PAGE, 1 + 2 * PAGE),
          "MAP_FIXED left its neighbours");
    printf("MAP_FIXED over a mapping: ok\n");

    CHECK_FAILS(mmap(p, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
                MAP_FAILED, EEXIST, "MAP_FIXED_NOREPLACE over a mapping");
    CHECK(munmap(p, 4 * PAGE) == 0, "munmap");
    q = mmap(p, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
             -1, 0);
    CHECK(q == p, "MAP_FIXED_NOREPLACE where munmap made room");
    CHECK(zero(p, 2 * PAGE), "the new mapping reads zero");
    printf("munmap, then MAP_FIXED_NOREPLACE there: ok\n");
    CHECK(munmap(p, 2 * PAGE) == 0, "munmap");
    CHECK(munmap(p, 2 * PAGE) == 0, "munmap of nothing succeeds");
}

static void check_mprotect(void) {
    unsigned char* p = map_anon(2 * PAGE);
    fill(p, 2 * PAGE, 3);
    CHECK(mprotect(p, PAGE, PROT_READ) == 0, "mprotect RW to R");
    CHECK(filled(p, 2 * PAGE, 3), "a read-only page reads as before");
    /* The kernel (or the VMM) must not write into a read-only page for the
     * program: read(2) into it fails without a partial copy. */
    int zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    CHECK(zero_fd >= 0, "open /dev/zero");
    CHECK_ERRNO(read(zero_fd, p, 16), EFAULT, "read(2) into a read-only page");
    CHECK(filled(p, PAGE, 3), "the read-only page is unchanged");
    CHECK(read(zero_fd, p + PAGE, 16) == 16 && zero(p + PAGE, 16), "read(2) into a writable page");
    CHECK(mprotect(p, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect back to RW");
    CHECK(read(zero_fd, p, 16) == 16 && zero(p, 16), "read(2) into the page made writable");
    CHECK(close(zero_fd) == 0, "close /dev/zero");
    printf("mprotect: ok\n");
    CHECK(munmap(p, 2 * PAGE) == 0, "munmap");
}

static void check_mremap(void) {
    unsigned char* p = map_anon(2 * PAGE);
    fill(p, 2 * PAGE, 5);
    unsigned char* q = mremap(p, 2 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
    CHECK(q != MAP_FAILED, "mremap grow with MREMAP_MAYMOVE");
    CHECK(filled(q, 2 * PAGE, 5), "mremap keeps the contents");
    CHECK(zero(q + 2 * PAGE, 62 * PAGE), "mremap's new pages read zero");
    q[64 * PAGE - 1] = 1;
    printf("mremap grow: ok\n");
    CHECK(munmap(q, 64 * PAGE) == 0, "munmap");
}

static void check_madvise(void) {
    unsigned char* p = map_anon(8 * PAGE);
    fill(p, 8 * PAGE, 9);
    CHECK(madvise(p + 2 * PAGE, 4 * PAGE, MADV_DONTNEED) == 0, "madvise MADV_DONTNEED");
    CHECK(zero(p + 2 * PAGE, 4 * PAGE), "MADV_DONTNEED pages read zero");
    CHECK(filled(p, 2 * PAGE, 9) && filled(p + 6 * PAGE, 2 * PAGE, 9 + 6 * PAGE),
          "MADV_DONTNEED left the other pages");
    printf("madvise MADV_DONTNEED: ok\n");
    CHECK(munmap(p, 8 * PAGE) == 0, "munmap");
}

static void check_file_mapping(void) {
    enum { SIZE = 2 * PAGE + 100 };
    static unsigned char data[SIZE];
    fill(data, SIZE, 11);
    int fd = open("lp_memory.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "create lp_memory.dat");
    CHECK(write(fd, data, SIZE) == SIZE, "write lp_memory.dat");
    unsigned char* m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(m != MAP_FAILED, "mmap of a file, private");
    CHECK(filled(m, SIZE, 11), "the mapping holds the file's bytes");
    CHECK(zero(m + SIZE, 3 * PAGE - SIZE), "the last page is zero past the end of the file");
    m[0] ^= 0xff; /* private: the file does not change */
    unsigned char first;
    CHECK(pread(fd, &first, 1, 0) == 1 && first == data[0], "a private mapping's store stays");
    printf("private file mapping: %d bytes ok\n", SIZE);
    CHECK(munmap(m, 3 * PAGE) == 0, "munmap");
    CHECK(close(fd) == 0, "close");
    CHECK(unlink("lp_memory.dat") == 0, "unlink lp_memory.dat");
}

static void check_malloc(void) {
    const size_t size = 64ul << 20;
    for (int round = 0; round < 2; ++round) {
        unsigned char* p = malloc(size);
        CHECK(p != NULL, "malloc 64 MiB");
        for (size_t i = 0; i < size; i += PAGE)
            p[i] = (unsigned char)(i / PAGE);
        for (size_t i = 0; i < size; i += PAGE)
            CHECK(p[i] == (unsigned char)(i / PAGE), "64 MiB keep what was written");
        free(p);
    }
    printf("malloc/free 64 MiB twice: ok\n");
}

static void check_errors(void) {
    unsigned char* p = map_anon(2 * PAGE);
    CHECK_FAILS(mmap(p + 1, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
                MAP_FAILED, EINVAL, "mmap MAP_FIXED at an unaligned address");
    CHECK_FAILS(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), MAP_FAILED, EINVAL,
                "mmap of length 0");
    CHECK_FAILS(mmap(NULL, PAGE, PROT_READ, MAP_ANONYMOUS, -1, 0), MAP_FAILED, EINVAL,
                "mmap neither private nor shared");
    CHECK_FAILS(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 1000, 0), MAP_FAILED, EBADF,
                "mmap of a closed descriptor");
    CHECK_ERRNO(munmap(p + 1, PAGE), EINVAL, "munmap at an unaligned address");
    /* the system call: musl's mprotect rounds the address down to a page */
    CHECK_ERRNO(syscall(SYS_mprotect, p + 1, PAGE, PROT_READ), EINVAL,
                "mprotect at an unaligned address");
    CHECK(munmap(p, 2 * PAGE) == 0, "munmap");
    CHECK_ERRNO(mprotect(p, PAGE, PROT_READ), ENOMEM, "mprotect of unmapped memory");
    CHECK_FAILS(mremap(p, PAGE, 2 * PAGE, MREMAP_MAYMOVE), MAP_FAILED, EFAULT,
                "mremap of unmapped memory");
}

int main(void) {
    lp_start();
    check_brk();
    check_mmap();
    check_mprotect();
    check_mremap();
    check_madvise();
    check_file_mapping();
    check_malloc();
    check_errors();
    printf("lp_memory: ok\n");
    return 0;
}
