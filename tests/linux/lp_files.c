/* lp_files: the file system calls, in the current directory (which must be
 * writable and is left as it was found). argv[1] names the data file
 * (default lp_files.dat). Prints each fact it checked: sizes, contents,
 * sorted directory listings, errno names.
 *
 * With LP_EXPECT_SANDBOX=1 it also checks that writing outside the current
 * directory is refused: creating /etc/lp_should_not_exist, opening
 * ../../etc/shadow for writing (as many ".." as reach the root from the
 * current directory; never truncating it), and creating a file
 * through a symlink that points into /etc. Each must fail; the errno name
 * is printed (EROFS under minivmm's sandbox, EACCES natively for a user
 * who may not write /etc). */
#include "lp_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

/* statx's layout (linux/stat.h), which musl's headers do not have. */
struct lp_statx_ts {
    int64_t tv_sec;
    uint32_t tv_nsec;
    int32_t reserved;
};
struct lp_statx {
    uint32_t stx_mask, stx_blksize;
    uint64_t stx_attributes;
    uint32_t stx_nlink, stx_uid, stx_gid;
    uint16_t stx_mode, spare0;
    uint64_t stx_ino, stx_size, stx_blocks, stx_attributes_mask;
    struct lp_statx_ts stx_atime, stx_btime, stx_ctime, stx_mtime;
    uint32_t stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
    uint64_t spare[14];
};
#define LP_STATX_TYPE 0x1u
#define LP_STATX_SIZE 0x200u

static const char* name = "lp_files.dat";
static char name2[256];

static void remove_if_there(const char* path) {
    if (unlink(path) != 0) CHECK(errno == ENOENT, "unlink of a leftover file");
}

static off_t size_of_fd(int fd) {
    struct stat st;
    CHECK(fstat(fd, &st) == 0, "fstat");
    return st.st_size;
}

static void check_read_write(void) {
    int fd = openat(AT_FDCWD, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "openat O_CREAT|O_EXCL");
    CHECK(write(fd, "hello, file\n", 12) == 12, "write");
    CHECK(pwrite(fd, "HELLO", 5, 0) == 5, "pwrite at 0");
    CHECK(lseek(fd, 0, SEEK_CUR) == 12, "pwrite leaves the offset");
    char buf[64] = {0};
    CHECK(pread(fd, buf, sizeof buf, 0) == 12, "pread");
    printf("pread: %.11s\n", buf);
    CHECK(strcmp(buf, "HELLO, file\n") == 0, "pread reads what was written");
    CHECK(lseek(fd, 7, SEEK_SET) == 7, "lseek SEEK_SET");
    CHECK(read(fd, buf, 4) == 4 && memcmp(buf, "file", 4) == 0, "read after lseek");
    CHECK(lseek(fd, -1, SEEK_END) == 11, "lseek SEEK_END");
    CHECK(lseek(fd, 0, SEEK_CUR) == 11, "lseek SEEK_CUR");
    CHECK(read(fd, buf, sizeof buf) == 1 && buf[0] == '\n', "read to the end");
    CHECK(read(fd, buf, sizeof buf) == 0, "read at the end returns 0");
    CHECK_ERRNO(lseek(fd, -100, SEEK_SET), EINVAL, "lseek before 0");

    /* writev appends three pieces at the offset (the end); readv splits them. */
    struct iovec out[3] = {{"one ", 4}, {"two ", 4}, {"three\n", 6}};
    CHECK(writev(fd, out, 3) == 14, "writev");
    char a[5] = {0}, b[9] = {0};
    struct iovec in[2] = {{a, 4}, {b, 8}};
    CHECK(lseek(fd, 12, SEEK_SET) == 12, "lseek back");
    CHECK(readv(fd, in, 2) == 12, "readv");
    printf("readv: [%s] [%s]\n", a, b);
    CHECK(strcmp(a, "one ") == 0 && strcmp(b, "two thre") == 0, "readv's pieces");

    struct stat st;
    CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "fstat of a regular file");
    printf("fstat size: %lld\n", (long long)st.st_size);
    CHECK(stat(name, &st) == 0 && st.st_size == 26, "stat size");
    CHECK(fstatat(AT_FDCWD, name, &st, 0) == 0 && st.st_size == 26, "newfstatat size");
    CHECK(fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_size == 26,
          "newfstatat AT_EMPTY_PATH size");
    struct lp_statx sx;
    memset(&sx, 0, sizeof sx);
    CHECK(syscall(SYS_statx, AT_FDCWD, name, 0, LP_STATX_SIZE | LP_STATX_TYPE, &sx) == 0, "statx");
    CHECK((sx.stx_mask & LP_STATX_SIZE) && sx.stx_size == 26 && S_ISREG(sx.stx_mode),
          "statx size and type");
    printf("stat, newfstatat, statx size: %llu\n", (unsigned long long)sx.stx_size);

    CHECK(ftruncate(fd, 5) == 0 && size_of_fd(fd) == 5, "ftruncate shrinks");
    CHECK(ftruncate(fd, 8192) == 0 && size_of_fd(fd) == 8192, "ftruncate grows");
    char tail[16];
    memset(tail, 'x', sizeof tail);
    CHECK(pread(fd, tail, sizeof tail, 8000) == (ssize_t)sizeof tail, "pread past the old end");
    for (size_t i = 0; i < sizeof tail; ++i)
        CHECK(tail[i] == 0, "ftruncate's new bytes are zero");
    printf("ftruncate: 5, then 8192 zero-filled\n");
    CHECK(fsync(fd) == 0, "fsync");
    CHECK(fdatasync(fd) == 0, "fdatasync");
    printf("fsync, fdatasync: ok\n");
    CHECK(close(fd) == 0, "close");
    CHECK_ERRNO(close(fd), EBADF, "close twice");

    /* creat: O_CREAT|O_WRONLY|O_TRUNC, so reading from it fails. */
    fd = creat(name2, 0600);
    CHECK(fd >= 0, "creat");
    CHECK(write(fd, "second\n", 7) == 7, "write to the creat file");
    CHECK_ERRNO(read(fd, buf, 1), EBADF, "read from a write-only descriptor");
    CHECK(close(fd) == 0, "close the creat file");
}

static void check_rename(void) {
    char moved[300];
    snprintf(moved, sizeof moved, "%s.moved", name);
    /* name2 exists: RENAME_NOREPLACE refuses, plain rename replaces it. */
    CHECK_ERRNO(syscall(SYS_renameat2, AT_FDCWD, name, AT_FDCWD, name2, RENAME_NOREPLACE), EEXIST,
                "renameat2 RENAME_NOREPLACE onto a file");
    CHECK(syscall(SYS_renameat2, AT_FDCWD, name, AT_FDCWD, moved, RENAME_NOREPLACE) == 0,
          "renameat2 RENAME_NOREPLACE to a new name");
    CHECK_ERRNO(access(name, F_OK), ENOENT, "the old name after rename");
    CHECK(rename(moved, name2) == 0, "rename replaces a file");
    struct stat st;
    CHECK(stat(name2, &st) == 0 && st.st_size == 8192, "the replaced file is the renamed one");
    CHECK(rename(name2, name) == 0, "rename back");
    printf("rename: ok\n");
}

static int compare_names(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

/* Lists `dir` with getdents64, the names sorted on one line. */
static void list_dir(const char* dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(fd >= 0, "open a directory");
    char* names[32];
    int n = 0;
    char buf[1024];
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        CHECK(got >= 0, "getdents64");
        if (got == 0) break;
        for (long off = 0; off < got;) {
            /* struct linux_dirent64: ino, off, reclen, type, name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            CHECK(n < 32, "at most 32 directory entries");
            names[n++] = strdup(buf + off + 19);
            off += reclen;
        }
    }
    CHECK(close(fd) == 0, "close the directory");
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    printf("getdents64 %s:", dir);
    for (int i = 0; i < n; ++i) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

static void touch(const char* path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "create a file");
    CHECK(close(fd) == 0, "close a new file");
}

static void check_directories(void) {
    CHECK(mkdir("lp_dir", 0755) == 0, "mkdir");
    CHECK_ERRNO(mkdir("lp_dir", 0755), EEXIST, "mkdir of an existing directory");
    touch("lp_dir/charlie");
    touch("lp_dir/alpha");
    touch("lp_dir/bravo");
    CHECK(mkdir("lp_dir/delta", 0700) == 0, "mkdir inside");
    list_dir("lp_dir");

    CHECK(symlink("lp_dir/alpha", "lp_link") == 0, "symlink");
    char target[64];
    ssize_t n = readlink("lp_link", target, sizeof target - 1);
    CHECK(n > 0, "readlink");
    target[n] = '\0';
    printf("readlink: %s\n", target);
    CHECK(strcmp(target, "lp_dir/alpha") == 0, "readlink gives the target");
    struct stat st;
    CHECK(lstat("lp_link", &st) == 0 && S_ISLNK(st.st_mode), "lstat of a symlink");
    CHECK(stat("lp_link", &st) == 0 && S_ISREG(st.st_mode), "stat follows a symlink");
    CHECK_ERRNO(readlink(name, target, sizeof target), EINVAL, "readlink of a regular file");
    CHECK(unlink("lp_link") == 0, "unlink the symlink");

    CHECK_ERRNO(rmdir("lp_dir"), ENOTEMPTY, "rmdir of a non-empty directory");
    CHECK_ERRNO(unlink("lp_dir/delta"), EISDIR, "unlink of a directory");
    CHECK(rmdir("lp_dir/delta") == 0, "rmdir");
    CHECK(unlink("lp_dir/alpha") == 0 && unlink("lp_dir/bravo") == 0, "unlink");
    CHECK(unlink("lp_dir/charlie") == 0, "unlink");
    list_dir("lp_dir");
    CHECK(rmdir("lp_dir") == 0, "rmdir of the emptied directory");
    CHECK_ERRNO(rmdir("lp_dir"), ENOENT, "rmdir of a removed directory");
}

static void check_descriptors(void) {
    int fd = open(name, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0, "open O_RDWR");
    int flags = fcntl(fd, F_GETFL);
    CHECK(flags >= 0 && (flags & O_ACCMODE) == O_RDWR && !(flags & O_APPEND), "F_GETFL");
    CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "F_GETFD shows O_CLOEXEC");
    CHECK(fcntl(fd, F_SETFD, 0) == 0 && fcntl(fd, F_GETFD) == 0, "F_SETFD clears FD_CLOEXEC");
    CHECK(fcntl(fd, F_SETFL, flags | O_APPEND) == 0, "F_SETFL O_APPEND");
    CHECK((fcntl(fd, F_GETFL) & O_APPEND) != 0, "F_GETFL shows O_APPEND");
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek to 0");
    CHECK(write(fd, "end", 3) == 3 && size_of_fd(fd) == 8195, "O_APPEND writes at the end");
    printf("fcntl: ok\n");

    int d = dup(fd);
    CHECK(d >= 0 && d != fd, "dup");
    CHECK(fcntl(d, F_GETFD) == 0, "dup's descriptor is not close-on-exec");
    CHECK(lseek(d, 0, SEEK_CUR) == lseek(fd, 0, SEEK_CUR), "dup shares the offset");
    CHECK(lseek(d, 100, SEEK_SET) == 100 && lseek(fd, 0, SEEK_CUR) == 100,
          "a dup's lseek moves both");
    int d3 = dup3(fd, 40, O_CLOEXEC);
    CHECK(d3 == 40, "dup3 to 40");
    CHECK(fcntl(d3, F_GETFD) == FD_CLOEXEC, "dup3 O_CLOEXEC");
    CHECK_ERRNO(dup3(fd, fd, 0), EINVAL, "dup3 onto itself");
    int dc = fcntl(fd, F_DUPFD_CLOEXEC, 50);
    CHECK(dc >= 50 && fcntl(dc, F_GETFD) == FD_CLOEXEC, "F_DUPFD_CLOEXEC at or above 50");
    printf("dup, dup3, F_DUPFD_CLOEXEC: ok\n");
    CHECK(close(d) == 0 && close(d3) == 0 && close(dc) == 0 && close(fd) == 0, "close");
    CHECK_ERRNO(fcntl(fd, F_GETFD), EBADF, "fcntl of a closed descriptor");
    CHECK_ERRNO(dup(fd), EBADF, "dup of a closed descriptor");
    char c;
    CHECK_ERRNO(read(1000, &c, 1), EBADF, "read of descriptor 1000");

    CHECK(syscall(SYS_faccessat2, AT_FDCWD, name, R_OK | W_OK, AT_EACCESS) == 0,
          "faccessat2 R_OK|W_OK");
    CHECK_ERRNO(syscall(SYS_faccessat2, AT_FDCWD, "lp_missing", F_OK, 0), ENOENT,
                "faccessat2 of a missing file");
    CHECK_ERRNO(syscall(SYS_faccessat2, AT_FDCWD, name, F_OK, 0x10000), EINVAL,
                "faccessat2 with an unknown flag");
}

static void check_errors(void) {
    CHECK_ERRNO(open("lp_missing", O_RDONLY), ENOENT, "open of a missing file");
    CHECK_ERRNO(open(name, O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST, "O_CREAT|O_EXCL of a file");
    char path[300];
    snprintf(path, sizeof path, "%s/x", name);
    CHECK_ERRNO(open(path, O_RDONLY), ENOTDIR, "open beneath a file");
    CHECK_ERRNO(open(".", O_WRONLY), EISDIR, "open of a directory for writing");
    CHECK_ERRNO(open(name, O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY of a file");
    CHECK_ERRNO(unlink("lp_missing"), ENOENT, "unlink of a missing file");
}

/* One refused write outside the working directory. Should it be allowed,
 * what it created (`made`, or NULL) is removed again before failing. */
static void expect_refused(const char* path, int flags, const char* made, const char* what) {
    int fd = open(path, flags, 0644);
    if (fd >= 0) {
        close(fd);
        if (made != NULL) unlink(made);
        printf("FAIL: %s was allowed\n", what);
        exit(1);
    }
    printf("sandbox: %s refused (%s)\n", what, lp_errno_name(errno));
}

static void check_sandbox(void) {
    static const char outside[] = "/etc/lp_should_not_exist";
    expect_refused(outside, O_CREAT | O_WRONLY | O_CLOEXEC, outside, "create in /etc");
    /* ../../etc/shadow, with as many ".." as it takes to reach / from here;
     * no O_TRUNC: should the open succeed, the file is left as it was */
    char cwd[4096], up[4096] = "";
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    for (const char* c = cwd; *c != '\0'; ++c)
        if (*c == '/' && c[1] != '\0' && strlen(up) + 3 < sizeof up - 16) strcat(up, "../");
    strcat(up, "etc/shadow");
    expect_refused(up, O_WRONLY | O_CLOEXEC, NULL, "write ../../etc/shadow");
    CHECK(symlink(outside, "lp_escape") == 0, "symlink out of the directory");
    expect_refused("lp_escape", O_CREAT | O_WRONLY | O_CLOEXEC, outside,
                   "create through a symlink");
    CHECK(unlink("lp_escape") == 0, "unlink the symlink");
}

int main(int argc, char** argv) {
    lp_start();
    if (argc > 1) name = argv[1];
    snprintf(name2, sizeof name2, "%s.2", name);
    remove_if_there(name);
    remove_if_there(name2);

    check_read_write();
    check_rename();
    check_directories();
    check_descriptors();
    check_errors();
    const char* sandbox = getenv("LP_EXPECT_SANDBOX");
    if (sandbox != NULL && strcmp(sandbox, "1") == 0) check_sandbox();

    CHECK(unlink(name) == 0, "unlink the data file");
    CHECK_ERRNO(access(name2, F_OK), ENOENT, "the second file was renamed away");
    printf("lp_files: ok\n");
    return 0;
}
