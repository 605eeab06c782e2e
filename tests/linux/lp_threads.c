/* lp_threads: POSIX threads, which the C library makes with clone (musl) or
 * clone3 (glibc) and synchronizes with futexes. Without an argument: 4
 * threads add to one counter under a mutex; two threads play ping-pong on
 * a condition variable; gettid differs per thread while getpid does not;
 * __thread variables are per thread; pthread_join returns each thread's
 * value (so CLONE_CHILD_CLEARTID's wake works); a detached thread posts a
 * semaphore; 4 threads meet at a barrier; a thread that ends holding a
 * robust mutex hands it over as EOWNERDEAD (the kernel's robust-list walk);
 * pthread_exit from a thread. Prints facts, never an id.
 *
 * With an argument: `limit N` starts up to N threads that wait, and prints
 * how many it could start (pthread_create's error for the one that failed);
 * `fault` has a thread store to address 0x1000 while the main thread waits
 * (the program ends with SIGSEGV); `exit` calls exit_group(3) from a thread
 * while the main thread waits in pthread_join. */
#include "lp_common.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { kThreads = 4, kAdds = 20000, kRounds = 1000 };

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static __thread int tls_value = 7;

static void* add(void* arg) {
    pid_t* tid = arg;
    *tid = (pid_t)syscall(SYS_gettid);
    CHECK(tls_value == 7, "a new thread's __thread starts at its initial value");
    tls_value = (int)*tid;
    for (int i = 0; i < kAdds; ++i) {
        pthread_mutex_lock(&counter_lock);
        ++counter;
        pthread_mutex_unlock(&counter_lock);
    }
    CHECK(tls_value == (int)*tid, "__thread keeps this thread's value");
    return (void*)(intptr_t)(*tid & 0xff);
}

static void check_mutex_and_ids(void) {
    pthread_t t[kThreads];
    pid_t tids[kThreads];
    for (int i = 0; i < kThreads; ++i)
        CHECK(pthread_create(&t[i], NULL, add, &tids[i]) == 0, "pthread_create");
    for (int i = 0; i < kThreads; ++i) {
        void* ret = NULL;
        CHECK(pthread_join(t[i], &ret) == 0, "pthread_join");
        CHECK((intptr_t)ret == (tids[i] & 0xff), "pthread_join returns the thread's value");
    }
    printf("mutex counter: %ld of %d\n", counter, kThreads * kAdds);
    CHECK(counter == (long)kThreads * kAdds, "no increment lost");
    const pid_t self = (pid_t)syscall(SYS_gettid);
    int distinct = 1;
    for (int i = 0; i < kThreads; ++i) {
        if (tids[i] == self || tids[i] <= 0) distinct = 0;
        for (int k = 0; k < i; ++k)
            if (tids[k] == tids[i]) distinct = 0;
    }
    printf("tids distinct: %s\n", distinct ? "yes" : "no");
    CHECK(distinct, "each thread has its own tid");
    CHECK(getpid() == self, "the main thread's tid is the pid");
    CHECK(tls_value == 7, "the main thread's __thread is untouched");
}

static pthread_mutex_t ping_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ping_cond = PTHREAD_COND_INITIALIZER;
static int turn, rounds;

static void* pong(void* arg) {
    (void)arg;
    pthread_mutex_lock(&ping_lock);
    while (rounds < kRounds) {
        while (turn != 1 && rounds < kRounds)
            pthread_cond_wait(&ping_cond, &ping_lock);
        if (rounds >= kRounds) break;
        turn = 0;
        ++rounds;
        pthread_cond_broadcast(&ping_cond);
    }
    pthread_mutex_unlock(&ping_lock);
    return NULL;
}

static void check_condvar(void) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, pong, NULL) == 0, "pthread_create");
    pthread_mutex_lock(&ping_lock);
    while (rounds < kRounds) {
        while (turn != 0)
            pthread_cond_wait(&ping_cond, &ping_lock);
        if (rounds >= kRounds) break;
        turn = 1;
        pthread_cond_broadcast(&ping_cond);
    }
    pthread_mutex_unlock(&ping_lock);
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    printf("condvar rounds: %d\n", rounds);
}

static sem_t detached_done;

static void* detached(void* arg) {
    (void)arg;
    sem_post(&detached_done);
    return NULL;
}

static void check_detached_and_semaphore(void) {
    CHECK(sem_init(&detached_done, 0, 0) == 0, "sem_init");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    CHECK(pthread_create(&t, &attr, detached, NULL) == 0, "pthread_create detached");
    pthread_attr_destroy(&attr);
    CHECK(sem_wait(&detached_done) == 0, "sem_wait");
    printf("detached thread and semaphore: ok\n");
}

static pthread_barrier_t barrier;
static int serial_count;

static void* meet(void* arg) {
    (void)arg;
    if (pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
        __atomic_add_fetch(&serial_count, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void check_barrier(void) {
    CHECK(pthread_barrier_init(&barrier, NULL, kThreads) == 0, "pthread_barrier_init");
    pthread_t t[kThreads - 1];
    for (int i = 0; i < kThreads - 1; ++i)
        CHECK(pthread_create(&t[i], NULL, meet, NULL) == 0, "pthread_create");
    meet(NULL);
    for (int i = 0; i < kThreads - 1; ++i)
        CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
    printf("barrier: %d serial thread\n", serial_count);
    CHECK(serial_count == 1, "one serial thread at the barrier");
}

static pthread_mutex_t robust;

static void* die_holding(void* arg) {
    (void)arg;
    CHECK(pthread_mutex_lock(&robust) == 0, "lock the robust mutex");
    return NULL; /* ends holding it */
}

static void check_robust(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    CHECK(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0, "setrobust");
    CHECK(pthread_mutex_init(&robust, &attr) == 0, "pthread_mutex_init");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, die_holding, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    int r = pthread_mutex_lock(&robust);
    printf("robust mutex of a dead owner: %s\n", lp_errno_name(r));
    CHECK(r == EOWNERDEAD, "EOWNERDEAD");
    CHECK(pthread_mutex_consistent(&robust) == 0, "pthread_mutex_consistent");
    CHECK(pthread_mutex_unlock(&robust) == 0, "unlock");
    CHECK(pthread_mutex_lock(&robust) == 0, "lock again");
    CHECK(pthread_mutex_unlock(&robust) == 0, "unlock again");
}

static void* leave(void* arg) {
    pthread_exit(arg);
    return NULL;
}

static void check_pthread_exit(void) {
    pthread_t t;
    void* ret = NULL;
    CHECK(pthread_create(&t, NULL, leave, (void*)(intptr_t)5) == 0, "pthread_create");
    CHECK(pthread_join(t, &ret) == 0, "pthread_join");
    printf("pthread_exit value: %d\n", (int)(intptr_t)ret);
    CHECK((intptr_t)ret == 5, "pthread_exit's value");
}

static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;

static void* wait_forever(void* arg) {
    (void)arg;
    pthread_mutex_lock(&hold); /* the main thread holds it until the end */
    pthread_mutex_unlock(&hold);
    return NULL;
}

static int limit(int n) {
    pthread_mutex_lock(&hold);
    int started = 0, err = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (; started < n; ++started) {
        pthread_t t;
        err = pthread_create(&t, &attr, wait_forever, NULL);
        if (err != 0) break;
        pthread_detach(t);
    }
    printf("threads started: %d of %d%s%s\n", started, n, err ? ", then " : "",
           err ? lp_errno_name(err) : "");
    pthread_mutex_unlock(&hold);
    return 0;
}

static void* fault(void* arg) {
    (void)arg;
    printf("thread stores to 0x1000\n");
    *(volatile int*)0x1000 = 1;
    return NULL;
}

static void* exit_group_3(void* arg) {
    (void)arg;
    printf("thread calls exit_group(3)\n");
    syscall(SYS_exit_group, 3);
    return NULL;
}

int main(int argc, char** argv) {
    lp_start();
    if (argc == 3 && strcmp(argv[1], "limit") == 0) return limit(atoi(argv[2]));
    if (argc == 2 && (strcmp(argv[1], "fault") == 0 || strcmp(argv[1], "exit") == 0)) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, argv[1][0] == 'f' ? fault : exit_group_3, NULL) == 0,
              "pthread_create");
        pthread_join(t, NULL);
        printf("not reached\n");
        return 1;
    }
    check_mutex_and_ids();
    check_condvar();
    check_detached_and_semaphore();
    check_barrier();
    check_robust();
    check_pthread_exit();
    printf("lp_threads: ok\n");
    return 0;
}
