/* lp_time: clocks and sleeps. Each clock the vDSO serves never goes back
 * over 1000 reads; gettimeofday and time agree with CLOCK_REALTIME;
 * clock_getres gives 1 ns for the fine clocks and at most 10 ms for the
 * coarse ones; nanosleep and clock_nanosleep(TIMER_ABSTIME) sleep at least
 * as long as asked; sched_getcpu works; a bad clock id is EINVAL. Prints
 * facts only, never a time. */
#include "lp_common.h"

#include <sched.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static int64_t ns(struct timespec t) {
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t now(clockid_t id) {
    struct timespec t;
    CHECK(clock_gettime(id, &t) == 0, "clock_gettime");
    return ns(t);
}

static const struct {
    clockid_t id;
    const char* name;
    int coarse;
} clocks[] = {
    {CLOCK_REALTIME, "CLOCK_REALTIME", 0},
    {CLOCK_MONOTONIC, "CLOCK_MONOTONIC", 0},
    {CLOCK_MONOTONIC_RAW, "CLOCK_MONOTONIC_RAW", 0},
    {CLOCK_REALTIME_COARSE, "CLOCK_REALTIME_COARSE", 1},
    {CLOCK_MONOTONIC_COARSE, "CLOCK_MONOTONIC_COARSE", 1},
    {CLOCK_BOOTTIME, "CLOCK_BOOTTIME", 0},
};

static void check_clocks(void) {
    for (size_t c = 0; c < sizeof clocks / sizeof clocks[0]; ++c) {
        struct timespec t;
        int64_t last = now(clocks[c].id);
        CHECK(last > 0, "a clock is past its epoch");
        for (int i = 0; i < 1000; ++i) {
            CHECK(clock_gettime(clocks[c].id, &t) == 0, "clock_gettime");
            CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000, "tv_nsec is below 1e9");
            CHECK(ns(t) >= last, clocks[c].name);
            last = ns(t);
        }
        struct timespec res;
        CHECK(clock_getres(clocks[c].id, &res) == 0, "clock_getres");
        if (clocks[c].coarse) {
            CHECK(res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 10000000,
                  "a coarse clock's resolution is at most 10 ms");
            printf("%s: non-decreasing, coarse res ok\n", clocks[c].name);
        } else {
            printf("%s: non-decreasing, res %lld.%09ld s\n", clocks[c].name, (long long)res.tv_sec,
                   res.tv_nsec);
            CHECK(res.tv_sec == 0 && res.tv_nsec == 1, "a fine clock's resolution is 1 ns");
        }
    }
    CHECK(clock_getres(CLOCK_MONOTONIC, NULL) == 0, "clock_getres with a NULL result");

    /* MONOTONIC and BOOTTIME run at the same rate: their difference (the
     * time spent suspended) does not change over a few reads. */
    int64_t m0 = now(CLOCK_MONOTONIC), b = now(CLOCK_BOOTTIME), m1 = now(CLOCK_MONOTONIC);
    CHECK(b >= m0, "CLOCK_BOOTTIME is not behind CLOCK_MONOTONIC");
    int64_t m2 = now(CLOCK_MONOTONIC), b2 = now(CLOCK_BOOTTIME), m3 = now(CLOCK_MONOTONIC);
    int64_t d = (b2 - m2) - (b - m1), slack = (m1 - m0) + (m3 - m2) + 1000000;
    CHECK(d > -slack && d < slack, "CLOCK_BOOTTIME - CLOCK_MONOTONIC is constant");
    printf("CLOCK_BOOTTIME - CLOCK_MONOTONIC: constant\n");

    /* The coarse clocks lag the fine ones by at most a tick or so. */
    int64_t fine = now(CLOCK_MONOTONIC), coarse = now(CLOCK_MONOTONIC_COARSE);
    CHECK(coarse <= now(CLOCK_MONOTONIC) && fine - coarse < 20000000,
          "CLOCK_MONOTONIC_COARSE is within 20 ms behind CLOCK_MONOTONIC");
    printf("coarse clocks: within a tick\n");
}

static void check_wall_clock(void) {
    for (int attempt = 0;; ++attempt) {
        int64_t r0 = now(CLOCK_REALTIME);
        struct timeval tv;
        CHECK(gettimeofday(&tv, NULL) == 0, "gettimeofday");
        int64_t r1 = now(CLOCK_REALTIME);
        int64_t g = (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
        CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000, "tv_usec is below 1e6");
        /* gettimeofday truncates to a microsecond; a preemption between the
         * reads may widen the bracket, so try again a few times. */
        if (g >= r0 - 1000 && g <= r1) break;
        CHECK(attempt < 10 && r1 - r0 < 10000000,
              "gettimeofday is within CLOCK_REALTIME's bracket (10 ms)");
    }
    printf("gettimeofday: agrees with CLOCK_REALTIME\n");
    struct timeval tv;
    struct timezone tz;
    CHECK(gettimeofday(&tv, &tz) == 0, "gettimeofday with a time zone");

    int64_t r0 = now(CLOCK_REALTIME) / 1000000000;
    time_t t1;
    time_t t = time(&t1);
    int64_t r1 = now(CLOCK_REALTIME) / 1000000000;
    CHECK(t == t1, "time returns what it stores");
    CHECK(t >= r0 - 1 && t <= r1, "time agrees with CLOCK_REALTIME");
    printf("time: agrees with CLOCK_REALTIME\n");
}

static void check_sleeps(void) {
    struct timespec req = {0, 20000000}, rem = {7, 7};
    int64_t t0 = now(CLOCK_MONOTONIC);
    CHECK(nanosleep(&req, &rem) == 0, "nanosleep 20 ms");
    int64_t slept = now(CLOCK_MONOTONIC) - t0;
    CHECK(slept >= 20000000, "nanosleep sleeps at least 20 ms");
    printf("nanosleep 20 ms: >= 20 ms\n");

    struct timespec until;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &until) == 0, "clock_gettime");
    until.tv_nsec += 20000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_nsec -= 1000000000;
        until.tv_sec++;
    }
    int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
    CHECK(rc == 0, "clock_nanosleep TIMER_ABSTIME");
    CHECK(now(CLOCK_MONOTONIC) >= ns(until), "clock_nanosleep sleeps until the time");
    /* A time in the past returns at once. */
    until.tv_sec -= 1;
    CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == 0,
          "clock_nanosleep until a past time");
    req.tv_nsec = 1000000;
    CHECK(clock_nanosleep(CLOCK_REALTIME, 0, &req, NULL) == 0, "clock_nanosleep relative");
    printf("clock_nanosleep TIMER_ABSTIME: ok\n");
    struct timespec bad = {0, 1000000000};
    CHECK_ERRNO(nanosleep(&bad, NULL), EINVAL, "nanosleep with tv_nsec 1e9");
    /* clock_nanosleep returns the error number instead of setting errno */
    rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL);
    printf("clock_nanosleep with tv_nsec 1e9: %s\n", lp_errno_name(rc));
    CHECK(rc == EINVAL, "clock_nanosleep with tv_nsec 1e9 is EINVAL");
}

int main(void) {
    lp_start();
    check_clocks();
    check_wall_clock();
    check_sleeps();
    int cpu = sched_getcpu();
    CHECK(cpu >= 0, "sched_getcpu");
    printf("sched_getcpu: ok\n");

    struct timespec t;
    CHECK_ERRNO(clock_gettime((clockid_t)1000, &t), EINVAL, "clock_gettime of clock 1000");
    CHECK_ERRNO(clock_getres((clockid_t)1000, &t), EINVAL, "clock_getres of clock 1000");
    printf("lp_time: ok\n");
    return 0;
}
