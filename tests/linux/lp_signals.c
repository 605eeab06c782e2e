/* lp_signals: signal handlers, which the kernel (here the VMM) runs by
 * writing a frame on the thread's stack and which return through
 * rt_sigreturn. Without an argument: raise and kill with SA_SIGINFO (si_code,
 * si_pid); a blocked signal pending, then taken on unblocking; an interval
 * timer (setitimer) interrupting a floating-point and integer loop in user
 * mode, whose result must not change; alarm's remaining seconds; pause and
 * nanosleep ended by SIGALRM (EINTR, time left); sigsuspend's temporary mask;
 * faults to handlers: SIGSEGV with its address (left by siglongjmp, and
 * repaired with mprotect so the store is retried), SIGFPE and SIGILL; a
 * handler on an alternate stack (SA_ONSTACK); pthread_kill to a thread
 * spinning in user mode. Prints facts, never an address or a time.
 *
 * With an argument: `alarm` arms alarm(1) with no handler and spins (the
 * program ends by SIGALRM); `noreturn` faults in a SIGSEGV handler (the
 * program ends by SIGSEGV). */
#include "lp_common.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* An address the compiler cannot see through (it would warn of a store
 * out of bounds). */
static void* bad_pointer(uintptr_t address) {
    volatile uintptr_t a = address;
    return (void*)a;
}

static volatile sig_atomic_t hits;
static volatile sig_atomic_t last_code;
static volatile sig_atomic_t last_pid_ok;
static void* volatile last_addr;
static sigjmp_buf escape;

static void on_info(int sig, siginfo_t* info, void* uc) {
    (void)uc;
    ++hits;
    last_code = info->si_code;
    last_pid_ok = sig == info->si_signo && info->si_pid == getpid();
}

static void on_tick(int sig) {
    (void)sig;
    ++hits;
    /* A handler may use the FPU and SSE: the interrupted loop must not see it. */
    volatile double x = 2.0;
    for (int i = 0; i < 100; ++i)
        x = x * 1.5 / 1.25;
}

static void on_fault_escape(int sig, siginfo_t* info, void* uc) {
    (void)uc;
    last_code = info->si_code;
    last_addr = info->si_addr;
    siglongjmp(escape, sig);
}

static char* guarded;
static void on_fault_repair(int sig, siginfo_t* info, void* uc) {
    (void)sig;
    (void)uc;
    ++hits;
    last_addr = info->si_addr;
    /* Make the page writable: the store is retried when this returns. */
    mprotect(guarded, 4096, PROT_READ | PROT_WRITE);
}

static char alt_stack[64 * 1024];
static volatile sig_atomic_t on_alt;
static void on_alt_check(int sig) {
    (void)sig;
    char local;
    on_alt = &local > alt_stack && &local < alt_stack + sizeof alt_stack;
}

static void install(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction");
}

static void install_info(int sig, void (*handler)(int, siginfo_t*, void*), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction");
}

static const char* code_name(int code) {
    switch (code) {
    case SI_USER:
        return "SI_USER";
    case SI_TKILL:
        return "SI_TKILL";
    case SI_KERNEL:
        return "SI_KERNEL";
    default:
        return "other";
    }
}

/* A loop whose every step depends on floating-point and integer state; the
 * same count must give the same result however often it is interrupted. */
static double churn(long n, uint64_t* mix) {
    double acc = 1.0;
    uint64_t h = 1469598103934665603ull;
    for (long i = 0; i < n; ++i) {
        acc = acc * 0.9999999 + (double)(i & 1023) / 3.0;
        h = (h ^ (uint64_t)i) * 1099511628211ull;
    }
    *mix = h;
    return acc;
}

static void interval_timer(void) {
    uint64_t want_mix, got_mix;
    const double want = churn(2000000, &want_mix);
    hits = 0;
    install(SIGALRM, on_tick, SA_RESTART);
    struct itimerval it = {{0, 5000}, {0, 5000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    double got = 0;
    /* Until the timer has fired a few times, the loop again and again. */
    int rounds = 0;
    do {
        got = churn(2000000, &got_mix);
        CHECK(got == want && got_mix == want_mix, "the loop's result changed under signals");
        ++rounds;
    } while (hits < 5 && rounds < 100000);
    struct itimerval off = {{0, 0}, {0, 0}}, old;
    CHECK(setitimer(ITIMER_REAL, &off, &old) == 0, "setitimer off");
    CHECK(old.it_interval.tv_usec == 5000, "the interval read back");
    printf("setitimer: at least 5 SIGALRMs in a user-mode loop: %s\n", hits >= 5 ? "yes" : "no");
    printf("setitimer: the loop's floating-point and integer results unchanged\n");
}

static void sleeps(void) {
    hits = 0;
    install(SIGALRM, on_tick, 0);
    CHECK(alarm(5) == 0, "alarm");
    printf("alarm: %u seconds were left\n", alarm(1));
    errno = 0;
    int r = pause();
    printf("pause: %d %s after %d handler run\n", r, lp_errno_name(errno), (int)hits);

    struct itimerval it = {{0, 0}, {0, 100000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    struct timespec req = {30, 0}, rem = {0, 0};
    r = nanosleep(&req, &rem);
    printf("nanosleep: %d %s, time left: %s\n", r, lp_errno_name(errno),
           rem.tv_sec >= 20 ? "most of it" : "too little");

    /* sigsuspend: SIGALRM blocked, then let in only while suspended. */
    sigset_t block, during, now;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0, "sigprocmask");
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    sigemptyset(&during);
    hits = 0;
    r = sigsuspend(&during);
    CHECK(sigprocmask(SIG_BLOCK, NULL, &now) == 0, "sigprocmask");
    printf("sigsuspend: %d %s, handler runs %d, SIGALRM blocked again: %s\n", r,
           lp_errno_name(errno), (int)hits, sigismember(&now, SIGALRM) ? "yes" : "no");
    CHECK(sigprocmask(SIG_UNBLOCK, &block, NULL) == 0, "sigprocmask");
}

static void sent(void) {
    install_info(SIGUSR1, on_info, 0);
    hits = 0;
    CHECK(raise(SIGUSR1) == 0, "raise");
    printf("raise: handler runs %d, %s, sender is us: %s\n", (int)hits, code_name(last_code),
           last_pid_ok ? "yes" : "no");
    CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
    printf("kill: handler runs %d, %s, sender is us: %s\n", (int)hits, code_name(last_code),
           last_pid_ok ? "yes" : "no");

    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0, "block");
    CHECK(raise(SIGUSR1) == 0, "raise");
    CHECK(sigpending(&pending) == 0, "sigpending");
    printf("blocked: handler runs %d, pending: %s\n", (int)hits,
           sigismember(&pending, SIGUSR1) ? "yes" : "no");
    CHECK(sigprocmask(SIG_UNBLOCK, &set, NULL) == 0, "unblock");
    printf("unblocked: handler runs %d\n", (int)hits);
}

static void faults(void) {
    int sig;
    install_info(SIGSEGV, on_fault_escape, SA_NODEFER);
    if ((sig = sigsetjmp(escape, 1)) == 0) {
        *(volatile int*)bad_pointer(16) = 1;
        printf("SIGSEGV: not raised\n");
    } else {
        printf("SIGSEGV: handled, %s at address 16: %s\n",
               last_code == SEGV_MAPERR ? "SEGV_MAPERR" : "other",
               last_addr == (void*)16 ? "yes" : "no");
    }

    guarded = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(guarded != MAP_FAILED, "mmap");
    install_info(SIGSEGV, on_fault_repair, 0);
    hits = 0;
    *(volatile char*)(guarded + 100) = 42; /* faults once, repaired, retried */
    printf("SIGSEGV repaired by its handler: store retried (%d), handler runs %d, address "
           "right: %s\n",
           *(volatile char*)(guarded + 100), (int)hits, last_addr == guarded + 100 ? "yes" : "no");

    install_info(SIGFPE, on_fault_escape, 0);
    if ((sig = sigsetjmp(escape, 1)) == 0) {
        volatile int zero = 0, seven = 7;
        volatile int x = seven / zero;
        (void)x;
        printf("SIGFPE: not raised\n");
    } else {
        printf("SIGFPE: handled, %s\n", last_code == FPE_INTDIV ? "FPE_INTDIV" : "other");
    }
    install_info(SIGILL, on_fault_escape, 0);
    if ((sig = sigsetjmp(escape, 1)) == 0) {
        __asm__ volatile("ud2");
        printf("SIGILL: not raised\n");
    } else {
        printf("SIGILL: handled, %s\n", last_code == ILL_ILLOPN ? "ILL_ILLOPN" : "other");
    }
}

static void alternate_stack(void) {
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    install(SIGUSR2, on_alt_check, SA_ONSTACK);
    CHECK(raise(SIGUSR2) == 0, "raise");
    printf("SA_ONSTACK: handler on the alternate stack: %s\n", on_alt ? "yes" : "no");
    install(SIGUSR2, on_alt_check, 0);
    CHECK(raise(SIGUSR2) == 0, "raise");
    printf("without SA_ONSTACK: on the alternate stack: %s\n", on_alt ? "yes" : "no");
}

static volatile sig_atomic_t spin_stop;
static volatile long handler_tid;
static void on_thread_signal(int sig) {
    (void)sig;
    handler_tid = syscall(SYS_gettid);
    spin_stop = 1;
}
static void* spinner(void* arg) {
    *(volatile long*)arg = syscall(SYS_gettid);
    while (!spin_stop) {
    }
    return NULL;
}

static void thread_signal(void) {
    install(SIGUSR1, on_thread_signal, 0);
    volatile long tid = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, spinner, (void*)&tid) == 0, "pthread_create");
    while (!tid) {
    }
    CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    printf("pthread_kill: the spinning thread ran the handler: %s\n",
           handler_tid == tid ? "yes" : "no");
}

static void on_fault_again(int sig) {
    (void)sig;
    *(volatile int*)bad_pointer(32) = 1; /* SIGSEGV blocked in its own handler: the end */
}

int main(int argc, char** argv) {
    lp_start();
    if (argc > 1 && strcmp(argv[1], "alarm") == 0) {
        alarm(1);
        for (;;) {
        }
    }
    if (argc > 1 && strcmp(argv[1], "noreturn") == 0) {
        install(SIGSEGV, on_fault_again, 0);
        *(volatile int*)bad_pointer(16) = 1;
        return 0;
    }
    sent();
    interval_timer();
    sleeps();
    faults();
    alternate_stack();
    thread_signal();
    printf("lp_signals: ok\n");
    return 0;
}
