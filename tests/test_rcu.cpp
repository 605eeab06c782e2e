// The userspace RCU behind the lock-free reader policy and the address
// spaces' published views.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "minivmm/rcu.hpp"

using minivmm::RcuDomain;

TEST_CASE("RcuDomain: synchronize waits for a read-side section that began before it", "[rcu]") {
    RcuDomain domain;
    std::atomic<bool> inside{false}, leave{false}, synchronized{false};
    std::thread reader([&] {
        RcuDomain::ReadGuard outer(domain);
        {
            RcuDomain::ReadGuard nested(domain); // leaving a nested section is not leaving
        }
        inside.store(true);
        while (!leave.load())
            std::this_thread::yield();
    });
    while (!inside.load())
        std::this_thread::yield();
    std::thread writer([&] {
        domain.synchronize();
        synchronized.store(true);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK_FALSE(synchronized.load());
    leave.store(true);
    reader.join();
    writer.join();
    CHECK(synchronized.load());
    domain.synchronize(); // no reader left: returns at once
}

// Issue 14, finding 10: every thread that ever read a domain stayed in its
// reader list, scanned by every synchronize() for the life of the domain
// (a VMM that starts and stops vCPU or worker threads grows it for good).
TEST_CASE("RcuDomain: the readers of threads that have exited are dropped", "[rcu]") {
    RcuDomain domain;
    for (int round = 0; round < 4; ++round) {
        std::vector<std::thread> threads;
        for (int i = 0; i < 25; ++i)
            threads.emplace_back([&] { RcuDomain::ReadGuard guard(domain); });
        for (auto& t : threads)
            t.join();
    }
    domain.synchronize();
    CHECK(domain.registered_readers() == 0);
    { RcuDomain::ReadGuard guard(domain); }
    CHECK(domain.registered_readers() == 1); // this thread, still alive
}

// And a long-lived thread kept a record of every domain it had read, after
// the domain was gone.
TEST_CASE("RcuDomain: a thread drops its records of domains that are gone", "[rcu]") {
    std::thread([] {
        RcuDomain kept;
        { RcuDomain::ReadGuard guard(kept); }
        for (int i = 0; i < 1000; ++i) {
            auto domain = std::make_unique<RcuDomain>();
            RcuDomain::ReadGuard guard(*domain);
        }
        // The newest domain may not be swept yet; nothing older is kept.
        CHECK(RcuDomain::records_on_this_thread() <= 2);
        RcuDomain::ReadGuard again(kept); // its record survived the sweeps
        CHECK(kept.registered_readers() == 1);
    }).join();
}
