/* lp_process: the process's identity, limits and state. uname, the ids,
 * resource limits (lowering RLIMIT_NOFILE is then enforced), getrandom,
 * CPU affinity, sched_yield, the thread pointer (arch_prctl ARCH_GET_FS and
 * a __thread variable), signal dispositions, the signal mask and the
 * alternate signal stack (no signal is delivered), prctl's name, umask, and
 * ENOSYS for a system call that does not exist. Prints facts, never an id. */
#include "lp_common.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef ARCH_GET_FS
#define ARCH_GET_FS 0x1003 /* asm/prctl.h, which musl's headers do not have */
#endif

static __thread int tls_counter = 42;
static __thread char tls_name[16] = "tls";

static void check_identity(void) {
    struct utsname u;
    CHECK(uname(&u) == 0, "uname");
    printf("uname: %s %s\n", u.sysname, u.machine);
    CHECK(strcmp(u.sysname, "Linux") == 0, "uname sysname is Linux");
    CHECK(strcmp(u.machine, "x86_64") == 0, "uname machine is x86_64");
    CHECK(u.release[0] >= '1' && u.release[0] <= '9', "uname release starts with a digit");

    pid_t pid = getpid();
    CHECK(pid > 0, "getpid");
    CHECK(gettid() == pid, "gettid is getpid in a single-threaded process");
    CHECK(syscall(SYS_getpid) == pid, "getpid, the system call");
    CHECK(getppid() >= 0 && getppid() != pid, "getppid is another process");
    printf("pid, tid, ppid: ok\n");

    uid_t r, e, s;
    gid_t gr, ge, gs;
    CHECK(getresuid(&r, &e, &s) == 0 && getresgid(&gr, &ge, &gs) == 0, "getresuid, getresgid");
    CHECK(r == getuid() && e == geteuid() && gr == getgid() && ge == getegid(),
          "getres[ug]id agree with get[ug]id and gete[ug]id");
    CHECK(getuid() == geteuid() && getgid() == getegid(), "real ids are the effective ids");
    CHECK(getgroups(0, NULL) >= 0, "getgroups");
    printf("ids ok\n");
}

static void check_limits(void) {
    struct rlimit nofile, via_prlimit, stack;
    CHECK(getrlimit(RLIMIT_NOFILE, &nofile) == 0, "getrlimit RLIMIT_NOFILE");
    CHECK(nofile.rlim_cur <= nofile.rlim_max, "RLIMIT_NOFILE soft <= hard");
    CHECK(prlimit(0, RLIMIT_NOFILE, NULL, &via_prlimit) == 0, "prlimit64 RLIMIT_NOFILE");
    CHECK(via_prlimit.rlim_cur == nofile.rlim_cur && via_prlimit.rlim_max == nofile.rlim_max,
          "prlimit64 agrees with getrlimit");
    CHECK(getrlimit(RLIMIT_STACK, &stack) == 0 && stack.rlim_cur > 0, "RLIMIT_STACK > 0");
    printf("rlimits: NOFILE soft <= hard, STACK > 0\n");

    /* Lower the soft limit to 32; then descriptors run out at 32. */
    struct rlimit lower = {32, nofile.rlim_max};
    CHECK(nofile.rlim_cur >= 32, "RLIMIT_NOFILE is at least 32");
    CHECK(setrlimit(RLIMIT_NOFILE, &lower) == 0, "setrlimit RLIMIT_NOFILE 32");
    struct rlimit seen;
    CHECK(getrlimit(RLIMIT_NOFILE, &seen) == 0 && seen.rlim_cur == 32 &&
              seen.rlim_max == nofile.rlim_max,
          "getrlimit sees the lowered RLIMIT_NOFILE");
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(null_fd >= 0 && null_fd < 32, "open /dev/null");
    int fds[40], n = 0;
    for (;;) {
        int fd = dup(null_fd);
        if (fd < 0) break;
        CHECK(n < 40 && fd < 32, "dup stays below RLIMIT_NOFILE");
        fds[n++] = fd;
    }
    CHECK(errno == EMFILE, "dup past RLIMIT_NOFILE is EMFILE");
    CHECK_ERRNO(fcntl(null_fd, F_DUPFD, 40), EINVAL, "F_DUPFD above RLIMIT_NOFILE");
    while (n > 0)
        close(fds[--n]);
    close(null_fd);
    struct rlimit inverted = {64, 32};
    CHECK_ERRNO(setrlimit(RLIMIT_NOFILE, &inverted), EINVAL, "setrlimit soft above hard");
    CHECK(setrlimit(RLIMIT_NOFILE, &nofile) == 0, "setrlimit RLIMIT_NOFILE back");
    printf("setrlimit RLIMIT_NOFILE 32: enforced (EMFILE)\n");
}

static void check_random_and_sched(void) {
    unsigned char buf[64];
    memset(buf, 0, sizeof buf);
    CHECK(getrandom(buf, sizeof buf, 0) == (ssize_t)sizeof buf, "getrandom 64 bytes");
    unsigned any = 0;
    for (size_t i = 0; i < sizeof buf; ++i)
        any |= buf[i];
    CHECK(any != 0, "getrandom's 64 bytes are not all zero");
    CHECK(getrandom(buf, 16, GRND_NONBLOCK) == 16, "getrandom GRND_NONBLOCK");
    CHECK_ERRNO(getrandom(buf, 16, 0x100), EINVAL, "getrandom with an unknown flag");
    printf("getrandom: ok\n");

    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
    CHECK(CPU_COUNT(&set) >= 1, "sched_getaffinity allows at least one CPU");
    printf("sched_getaffinity: at least 1 CPU\n");
    CHECK(sched_yield() == 0, "sched_yield");
    printf("sched_yield: 0\n");
}

static void check_thread_pointer(void) {
    unsigned long fs = 0, self;
    CHECK(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs) == 0, "arch_prctl ARCH_GET_FS");
    /* glibc and musl both keep the thread control block's own address at %fs:0 */
    __asm__("mov %%fs:0, %0" : "=r"(self));
    CHECK(fs != 0 && fs == self, "ARCH_GET_FS is the thread pointer");
    CHECK(fs == (unsigned long)(uintptr_t)__builtin_thread_pointer(),
          "ARCH_GET_FS is __builtin_thread_pointer()");
    printf("arch_prctl ARCH_GET_FS: the thread pointer\n");
    CHECK(tls_counter == 42 && strcmp(tls_name, "tls") == 0, "__thread initial values");
    tls_counter += 1;
    strcpy(tls_name, "changed");
    CHECK(tls_counter == 43 && strcmp(tls_name, "changed") == 0, "__thread stores");
    printf("__thread: ok\n");
}

static void handler(int sig) {
    (void)sig;
}

static void check_signals(void) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0, "sigaction install");
    CHECK(old.sa_handler == SIG_DFL, "SIGUSR1 was SIG_DFL");
    CHECK(sigaction(SIGUSR1, NULL, &old) == 0, "sigaction read back");
    CHECK(old.sa_handler == handler, "the handler reads back");
    CHECK((old.sa_flags & SA_RESTART) && sigismember(&old.sa_mask, SIGUSR2) == 1 &&
              sigismember(&old.sa_mask, SIGINT) == 0,
          "the flags and mask read back");
    sa.sa_handler = SIG_IGN;
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0 && old.sa_handler == handler, "sigaction SIG_IGN");
    sa.sa_handler = SIG_DFL;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction back to SIG_DFL");
    CHECK_ERRNO(sigaction(SIGKILL, &sa, NULL), EINVAL, "sigaction of SIGKILL");
    CHECK_ERRNO(syscall(SYS_rt_sigaction, 65, NULL, &old, 8), EINVAL, "rt_sigaction of signal 65");
    printf("sigaction: ok\n");

    sigset_t block, now;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGKILL); /* silently not blocked */
    CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0, "sigprocmask SIG_BLOCK");
    CHECK(sigprocmask(SIG_SETMASK, NULL, &now) == 0, "sigprocmask read");
    CHECK(sigismember(&now, SIGUSR1) == 1 && sigismember(&now, SIGKILL) == 0,
          "SIGUSR1 is blocked, SIGKILL cannot be");
    CHECK(sigprocmask(SIG_UNBLOCK, &block, &now) == 0 && sigismember(&now, SIGUSR1) == 1,
          "sigprocmask SIG_UNBLOCK returns the old mask");
    CHECK(sigprocmask(SIG_SETMASK, NULL, &now) == 0 && sigismember(&now, SIGUSR1) == 0,
          "SIGUSR1 is unblocked");
    CHECK_ERRNO(sigprocmask(7, &block, NULL), EINVAL, "sigprocmask with a bad how");
    printf("sigprocmask: ok\n");

    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0}, got;
    CHECK(sigaltstack(NULL, &got) == 0 && (got.ss_flags & SS_DISABLE), "no sigaltstack at first");
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack set");
    CHECK(sigaltstack(NULL, &got) == 0, "sigaltstack get");
    CHECK(got.ss_sp == altstack && got.ss_size == sizeof altstack && got.ss_flags == 0,
          "sigaltstack reads back");
    ss.ss_size = 1024;
    CHECK_ERRNO(sigaltstack(&ss, NULL), ENOMEM, "sigaltstack below MINSIGSTKSZ");
    ss.ss_flags = SS_DISABLE;
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack disable");
    CHECK(sigaltstack(NULL, &got) == 0 && (got.ss_flags & SS_DISABLE), "sigaltstack disabled");
    printf("sigaltstack: ok\n");
}

static void check_misc(void) {
    char name[16] = {0};
    CHECK(prctl(PR_SET_NAME, "lp-renamed", 0, 0, 0) == 0, "prctl PR_SET_NAME");
    CHECK(prctl(PR_GET_NAME, name, 0, 0, 0) == 0, "prctl PR_GET_NAME");
    printf("prctl name: %s\n", name);
    CHECK(strcmp(name, "lp-renamed") == 0, "PR_GET_NAME gives what PR_SET_NAME set");
    CHECK(prctl(PR_SET_NAME, "a-name-longer-than-15", 0, 0, 0) == 0, "PR_SET_NAME, long");
    CHECK(prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && strcmp(name, "a-name-longer-t") == 0,
          "PR_SET_NAME keeps 15 characters");

    mode_t old = umask(027);
    CHECK(umask(old) == 027, "umask returns what was set");
    CHECK(umask(old) == old, "umask restored");
    printf("umask: ok\n");

    CHECK_ERRNO(syscall(1000), ENOSYS, "system call 1000");
    CHECK_ERRNO(syscall(-1L), ENOSYS, "system call -1");
}

int main(void) {
    lp_start();
    check_identity();
    check_limits();
    check_random_and_sched();
    check_thread_pointer();
    check_signals();
    check_misc();
    printf("lp_process: ok\n");
    return 0;
}
