/* What the Linux test programs (tests/linux/lp_*.c) share: checks that stop
 * the program with a line naming what failed, and errno names (musl has no
 * strerrorname_np). Plain C11 with GNU/POSIX interfaces; include it first.
 *
 * Output is line-buffered whatever stdout is, so that it reads the same on
 * a terminal, a pipe or a file, and interleaves with write(2) in program
 * order; nothing printed may depend on addresses, ids or times. */
#ifndef LP_COMMON_H
#define LP_COMMON_H

#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline const char* lp_errno_name(int e) {
    static char other[24];
    switch (e) {
    case 0:
        return "0";
#define LP_ERRNO(x)                                                                                \
    case x:                                                                                        \
        return #x
        LP_ERRNO(EPERM);
        LP_ERRNO(ENOENT);
        LP_ERRNO(ESRCH);
        LP_ERRNO(EINTR);
        LP_ERRNO(EIO);
        LP_ERRNO(ENXIO);
        LP_ERRNO(E2BIG);
        LP_ERRNO(ENOEXEC);
        LP_ERRNO(EBADF);
        LP_ERRNO(ECHILD);
        LP_ERRNO(EAGAIN);
        LP_ERRNO(ENOMEM);
        LP_ERRNO(EACCES);
        LP_ERRNO(EFAULT);
        LP_ERRNO(EBUSY);
        LP_ERRNO(EEXIST);
        LP_ERRNO(EXDEV);
        LP_ERRNO(ENODEV);
        LP_ERRNO(ENOTDIR);
        LP_ERRNO(EISDIR);
        LP_ERRNO(EINVAL);
        LP_ERRNO(ENFILE);
        LP_ERRNO(EMFILE);
        LP_ERRNO(ENOTTY);
        LP_ERRNO(EFBIG);
        LP_ERRNO(ENOSPC);
        LP_ERRNO(ESPIPE);
        LP_ERRNO(EROFS);
        LP_ERRNO(EMLINK);
        LP_ERRNO(EPIPE);
        LP_ERRNO(ERANGE);
        LP_ERRNO(ENAMETOOLONG);
        LP_ERRNO(ENOSYS);
        LP_ERRNO(ENOTEMPTY);
        LP_ERRNO(ELOOP);
        LP_ERRNO(EOVERFLOW);
        LP_ERRNO(ENOTSUP);
        LP_ERRNO(ETIMEDOUT);
        LP_ERRNO(EOWNERDEAD);
#undef LP_ERRNO
    default:
        snprintf(other, sizeof other, "errno %d", e);
        return other;
    }
}

/* Stops the program: "FAIL: <what> (line L, errno NAME)", exit status 1. */
static inline void lp_fail(int line, const char* what, int err) {
    printf("FAIL: %s (line %d, errno %s)\n", what, line, lp_errno_name(err));
    fflush(stdout);
    exit(1);
}

/* The end of CHECK_FAILS: prints "<what>: NAME", or stops the program. */
static inline void lp_expect_errno(int line, int failed, int got, int want, const char* what) {
    if (!failed || got != want) {
        printf("FAIL: %s: %s, expected %s (line %d)\n", what,
               failed ? lp_errno_name(got) : "succeeded", lp_errno_name(want), line);
        fflush(stdout);
        exit(1);
    }
    printf("%s: %s\n", what, lp_errno_name(got));
}

/* CHECK(cond, what): fails with `what` (and errno as cond left it) unless
 * cond holds. */
#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        int lp_ok_ = !!(cond);                                                                     \
        int lp_saved_errno_ = errno;                                                               \
        if (!lp_ok_) lp_fail(__LINE__, (what), lp_saved_errno_);                                   \
    } while (0)

/* CHECK_FAILS(expr, failed, err, what): expr yields `failed` (-1,
 * MAP_FAILED, ...) with errno err; prints "<what>: ERRNAME".
 * CHECK_ERRNO: the same for a call that fails with -1. */
#define CHECK_FAILS(expr, failed, err, what)                                                       \
    do {                                                                                           \
        errno = 0;                                                                                 \
        int lp_failed_ = (expr) == (failed);                                                       \
        lp_expect_errno(__LINE__, lp_failed_, errno, (err), (what));                               \
    } while (0)
#define CHECK_ERRNO(expr, err, what) CHECK_FAILS((long)(expr), -1L, err, what)

/* Call first in main. */
static inline void lp_start(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

#endif
