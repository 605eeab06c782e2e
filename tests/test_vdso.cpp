// The vDSO for Linux programs (src/program/vdso.*, guest/vdso/), natively:
// the embedded image is mapped in this process exactly as the guest loader
// maps it ([parameter page][image, read+execute]), its functions are found
// through its own dynamic symbol table and called, and what they return is
// compared with this host's clocks. The fallback `syscall` is then this
// host's own system call, which answers too.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <cpuid.h>
#include <elf.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "minivmm/error.hpp"
#include "minivmm/host_mapping.hpp"
#include "program/vdso.hpp"
#include "skip.hpp"

using namespace minivmm;
using namespace minivmm::linux_abi;

namespace {

using ClockGettime = int (*)(clockid_t, timespec*);
using Gettimeofday = int (*)(timeval*, struct timezone*);
using Time = time_t (*)(time_t*);
using ClockGetres = int (*)(clockid_t, timespec*);
using Getcpu = long (*)(unsigned*, unsigned*, void*);

constexpr clockid_t kHresClocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW,
                                     CLOCK_BOOTTIME};
constexpr clockid_t kCoarseClocks[] = {CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE};
constexpr const char* kExported[] = {"clock_gettime", "gettimeofday", "time", "clock_getres",
                                     "getcpu"};

std::int64_t ns_of(const timespec& ts) {
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t host_ns(clockid_t clock) {
    timespec ts;
    REQUIRE(clock_gettime(clock, &ts) == 0);
    return ns_of(ts);
}

// The guest loader's mapping, in this process: the parameter page (left
// writable here: the publisher is in the same process), then the image.
class NativeVdso {
  public:
    NativeVdso() : mapping_(HostMapping::anonymous(kVdsoPageSize + vdso_mapped_size())) {
        auto image = vdso_image();
        std::memcpy(mapping_.bytes().data() + kVdsoPageSize, image.data(), image.size());
        REQUIRE(mprotect(mapping_.bytes().data() + kVdsoPageSize, vdso_mapped_size(),
                         PROT_READ | PROT_EXEC) == 0);
        VdsoSymbols symbols(image);
        auto at = [&](const char* name) {
            auto offset = symbols.find(std::string("__vdso_") + name);
            REQUIRE(offset);
            return mapping_.bytes().data() + kVdsoPageSize + *offset;
        };
        clock_gettime = reinterpret_cast<ClockGettime>(at("clock_gettime"));
        gettimeofday = reinterpret_cast<Gettimeofday>(at("gettimeofday"));
        time = reinterpret_cast<Time>(at("time"));
        clock_getres = reinterpret_cast<ClockGetres>(at("clock_getres"));
        getcpu = reinterpret_cast<Getcpu>(at("getcpu"));
    }
    std::span<std::byte> page() const { return mapping_.bytes().first(kVdsoPageSize); }
    std::int64_t ns(clockid_t clock) const {
        timespec ts{};
        REQUIRE(clock_gettime(clock, &ts) == 0);
        CHECK(ts.tv_nsec >= 0);
        CHECK(ts.tv_nsec < 1'000'000'000);
        return ns_of(ts);
    }

    ClockGettime clock_gettime;
    Gettimeofday gettimeofday;
    Time time;
    ClockGetres clock_getres;
    Getcpu getcpu;

  private:
    HostMapping mapping_;
};

// How far the vDSO's reading of `clock` is from the host's: the distance of
// ours from the middle of two host readings around it, least of `tries`
// (a preempted try is far off; the clocks' own error is not).
std::int64_t error_ns(const NativeVdso& vdso, clockid_t clock, int tries = 20) {
    std::int64_t best = std::numeric_limits<std::int64_t>::max();
    for (int i = 0; i < tries; ++i) {
        std::int64_t before = host_ns(clock);
        std::int64_t ours = vdso.ns(clock);
        std::int64_t after = host_ns(clock);
        std::int64_t error = ours - (before + (after - before) / 2);
        if (std::abs(error) < std::abs(best)) best = error;
    }
    return best;
}

void spin_for(std::chrono::nanoseconds duration) {
    auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end) {
    }
}

VdsoPublisher::Options quick_options() {
    VdsoPublisher::Options options;
    options.calibration = std::chrono::milliseconds(20);
    return options;
}

} // namespace

TEST_CASE("vDSO image: the ELF that glibc and musl expect", "[vdso]") {
    auto image = vdso_image();
    REQUIRE(image.size() > sizeof(Elf64_Ehdr));
    CHECK(vdso_mapped_size() % kVdsoPageSize == 0);
    CHECK(vdso_mapped_size() >= image.size());
    CHECK(vdso_mapped_size() < image.size() + kVdsoPageSize);

    // One PT_LOAD, readable and executable but not writable, from offset 0.
    Elf64_Ehdr eh;
    std::memcpy(&eh, image.data(), sizeof eh);
    int loads = 0;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD) continue;
        ++loads;
        CHECK(ph.p_offset == 0);
        CHECK(ph.p_vaddr == 0);
        CHECK(ph.p_flags == (PF_R | PF_X));
        CHECK(ph.p_filesz == ph.p_memsz);
        CHECK(ph.p_filesz <= image.size());
    }
    CHECK(loads == 1);

    VdsoSymbols symbols(image);
    CHECK(symbols.soname() == MVG_VDSO_SONAME);
    CHECK(symbols.versions() == std::vector<std::string>{"LINUX_2.6"});
    CHECK(symbols.all_defined_symbols_versioned());
    CHECK_FALSE(symbols.has_relocations());
    for (const char* name : kExported) {
        CAPTURE(name);
        std::string prefixed = std::string("__vdso_") + name;
        auto musl = symbols.find(prefixed);
        auto glibc = symbols.find_gnu_hash(prefixed);
        REQUIRE(musl);
        CHECK(glibc == musl);
        CHECK(*musl < image.size());
        // The unprefixed name is an alias of the same code.
        CHECK(symbols.find(name) == musl);
        CHECK(symbols.find_gnu_hash(name) == musl);
        // Only under LINUX_2.6.
        CHECK_FALSE(symbols.find(prefixed, "LINUX_2.5"));
        CHECK_FALSE(symbols.find_gnu_hash(prefixed, "LINUX_2.5"));
    }
    CHECK_FALSE(symbols.find("__vdso_getrandom"));
    CHECK_FALSE(symbols.find_gnu_hash("__vdso_getrandom"));
    CHECK_FALSE(symbols.find("mvg_vdso_page")); // the parameter page is not exported
}

TEST_CASE("vDSO image: a malformed image is an ImageError", "[vdso]") {
    std::vector<std::byte> copy(vdso_image().begin(), vdso_image().end());
    CHECK_THROWS_AS(VdsoSymbols(std::span(copy).first(32)), ImageError);
    copy[0] = std::byte{0};
    CHECK_THROWS_AS(VdsoSymbols(copy), ImageError);
}

TEST_CASE("vDSO: every clock agrees with the host's within 1 us", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    CHECK(publisher.tsc_hz() > 1e8);
    CHECK(publisher.published().clock_mode == MVG_VDSO_CLOCK_TSC);

    // Right after publication, and across updates at the recommended
    // interval, measured just before each update (the largest drift).
    std::int64_t worst[std::size(kHresClocks)] = {};
    for (int round = 0; round < 20; ++round) {
        spin_for(kVdsoUpdateInterval - std::chrono::microseconds(500));
        for (std::size_t i = 0; i < std::size(kHresClocks); ++i) {
            std::int64_t error = error_ns(vdso, kHresClocks[i]);
            worst[i] = std::max(worst[i], std::abs(error));
        }
        publisher.update();
    }
    for (std::size_t i = 0; i < std::size(kHresClocks); ++i) {
        CAPTURE(kHresClocks[i], worst[i]);
        CHECK(worst[i] < 1000);
    }
}

TEST_CASE("vDSO: the clocks never go back, across updates", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    const clockid_t clocks[] = {CLOCK_MONOTONIC,        CLOCK_MONOTONIC_RAW,   CLOCK_BOOTTIME,
                                CLOCK_MONOTONIC_COARSE, CLOCK_REALTIME_COARSE, CLOCK_REALTIME};
    std::int64_t last[std::size(clocks)] = {};
    auto next_update = std::chrono::steady_clock::now() + kVdsoUpdateInterval;
    int updates = 0, backwards = 0;
    for (int i = 0; i < 300'000; ++i) {
        std::size_t k = i % std::size(clocks);
        std::int64_t now = vdso.ns(clocks[k]);
        if (now < last[k]) {
            ++backwards;
            UNSCOPED_INFO("clock " << clocks[k] << " went back by " << last[k] - now << " ns");
        }
        last[k] = now;
        if (std::chrono::steady_clock::now() >= next_update) {
            publisher.update();
            ++updates;
            next_update += kVdsoUpdateInterval;
        }
    }
    CHECK(backwards == 0);
    CHECK(updates > 0);
}

TEST_CASE("vDSO: the coarse clocks tick on the host's grid", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    const auto& data = publisher.published();
    timespec host_res;
    REQUIRE(clock_getres(CLOCK_MONOTONIC_COARSE, &host_res) == 0);
    const std::int64_t res = ns_of(host_res);
    CHECK(data.coarse_res_ns == static_cast<std::uint64_t>(res));

    for (int i = 0; i < 50; ++i) {
        std::int64_t host_coarse = host_ns(CLOCK_MONOTONIC_COARSE);
        std::int64_t coarse = vdso.ns(CLOCK_MONOTONIC_COARSE);
        std::int64_t fine = vdso.ns(CLOCK_MONOTONIC);
        std::int64_t real_coarse = vdso.ns(CLOCK_REALTIME_COARSE);
        std::int64_t real_fine = vdso.ns(CLOCK_REALTIME);
        // Behind the fine clock by less than a tick, and on the grid.
        CHECK(coarse <= fine);
        CHECK(fine - coarse < res + 1000);
        CHECK(coarse % res == static_cast<std::int64_t>(data.coarse_phase_ns));
        CHECK(real_coarse <= real_fine);
        CHECK(real_fine - real_coarse < res + 1000);
        CHECK(real_coarse - data.realtime_offset_ns >= coarse);
        // The host's coarse clock is a tick older at most (its tick is an
        // interrupt a little after the grid point).
        CHECK(coarse >= host_coarse - res);
        CHECK(coarse <= host_ns(CLOCK_MONOTONIC));
        spin_for(std::chrono::microseconds(700));
        if (i % 10 == 9) publisher.update();
    }
}

TEST_CASE("vDSO: gettimeofday and time agree with clock_gettime", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    for (int i = 0; i < 1000; ++i) {
        std::int64_t before = vdso.ns(CLOCK_REALTIME);
        timeval tv{};
        REQUIRE(vdso.gettimeofday(&tv, nullptr) == 0);
        time_t stored = 0;
        time_t seconds = vdso.time(&stored);
        std::int64_t after = vdso.ns(CLOCK_REALTIME);
        std::int64_t tv_ns = std::int64_t{tv.tv_sec} * 1'000'000'000 + tv.tv_usec * 1000;
        CHECK(tv.tv_usec >= 0);
        CHECK(tv.tv_usec < 1'000'000);
        CHECK(tv_ns >= before / 1000 * 1000);
        CHECK(tv_ns <= after);
        CHECK(seconds == stored);
        CHECK(seconds >= before / 1'000'000'000);
        CHECK(seconds <= after / 1'000'000'000);
    }
    CHECK(vdso.time(nullptr) > 0);
    // The host's time of day, within 1 us (the best of a few tries).
    std::int64_t best = std::numeric_limits<std::int64_t>::max();
    for (int i = 0; i < 20; ++i) {
        timeval host_before, ours, host_after;
        ::gettimeofday(&host_before, nullptr);
        vdso.gettimeofday(&ours, nullptr);
        ::gettimeofday(&host_after, nullptr);
        auto us = [](const timeval& t) { return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_usec; };
        best = std::min(best, std::max({us(host_before) - us(ours), us(ours) - us(host_after),
                                        std::int64_t{0}}));
    }
    CHECK(best <= 1);
    // The zone is the host's (the kernel's sys_tz, asked directly).
    struct timezone host_tz {
    }, ours_tz{-1, -1};
    REQUIRE(syscall(SYS_gettimeofday, nullptr, &host_tz) == 0);
    REQUIRE(vdso.gettimeofday(nullptr, &ours_tz) == 0);
    CHECK(ours_tz.tz_minuteswest == host_tz.tz_minuteswest);
    CHECK(ours_tz.tz_dsttime == host_tz.tz_dsttime);
}

TEST_CASE("vDSO: clock_getres", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    for (clockid_t clock :
         {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME,
          CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_PROCESS_CPUTIME_ID, CLOCK_TAI}) {
        CAPTURE(clock);
        timespec host{}, ours{-1, -1};
        REQUIRE(::clock_getres(clock, &host) == 0);
        REQUIRE(vdso.clock_getres(clock, &ours) == 0);
        CHECK(ours.tv_sec == host.tv_sec);
        CHECK(ours.tv_nsec == host.tv_nsec);
        CHECK(vdso.clock_getres(clock, nullptr) == 0);
    }
    timespec ts{};
    CHECK(vdso.clock_getres(100, &ts) == -EINVAL);
}

TEST_CASE("vDSO: other clocks are the system call", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    // Served by the host kernel: it must be the host's own answer.
    std::int64_t before = host_ns(CLOCK_TAI);
    std::int64_t tai = vdso.ns(CLOCK_TAI);
    std::int64_t after = host_ns(CLOCK_TAI);
    CHECK(tai >= before);
    CHECK(tai <= after);
    before = host_ns(CLOCK_PROCESS_CPUTIME_ID);
    std::int64_t cpu = vdso.ns(CLOCK_PROCESS_CPUTIME_ID);
    after = host_ns(CLOCK_PROCESS_CPUTIME_ID);
    CHECK(cpu >= before);
    CHECK(cpu <= after);
    timespec ts{};
    CHECK(vdso.clock_gettime(100, &ts) == -EINVAL);
    CHECK(vdso.clock_gettime(-1000, &ts) < 0); // a dynamic clock id of no process
}

TEST_CASE("vDSO: without the TSC, or before publication, every call is a system call", "[vdso]") {
    NativeVdso vdso;
    std::optional<VdsoPublisher> publisher;
    SECTION("a zeroed page") {}
    SECTION("use_tsc = false") {
        auto options = quick_options();
        options.use_tsc = false;
        publisher.emplace(vdso.page(), options);
        CHECK(publisher->published().clock_mode == MVG_VDSO_CLOCK_NONE);
        publisher->update();
    }
    // The host kernel's own clocks, so exactly within the two readings.
    for (clockid_t clock : kHresClocks) {
        CAPTURE(clock);
        std::int64_t before = host_ns(clock);
        std::int64_t ours = vdso.ns(clock);
        std::int64_t after = host_ns(clock);
        CHECK(ours >= before);
        CHECK(ours <= after);
    }
    timeval tv{};
    CHECK(vdso.gettimeofday(&tv, nullptr) == 0);
    CHECK(std::abs(tv.tv_sec - ::time(nullptr)) <= 1);
    CHECK(std::abs(vdso.time(nullptr) - ::time(nullptr)) <= 1);
    timespec res{};
    CHECK(vdso.clock_getres(CLOCK_MONOTONIC, &res) == 0);
    CHECK(vdso.clock_getres(100, &res) == -EINVAL);
}

TEST_CASE("vDSO: a reader waits while the sequence count is odd", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    auto* data = reinterpret_cast<mvg_vdso_data*>(vdso.page().data());
    std::atomic_ref<std::uint64_t> seq(data->seq);
    std::uint64_t even = seq.load();
    REQUIRE(even % 2 == 0);
    seq.store(even + 1);
    std::atomic<bool> done{false};
    std::thread reader([&] {
        timespec ts;
        vdso.clock_gettime(CLOCK_MONOTONIC, &ts);
        done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(done.load());
    seq.store(even + 2);
    reader.join();
    CHECK(done.load());
}

TEST_CASE("vDSO: readers during updates see whole updates", "[vdso]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        while (!stop.load())
            publisher.update();
    });
    std::int64_t last = 0, worst = 0;
    int backwards = 0;
    for (int i = 0; i < 200'000; ++i) {
        std::int64_t host_before = host_ns(CLOCK_MONOTONIC);
        std::int64_t ours = vdso.ns(CLOCK_MONOTONIC);
        std::int64_t host_after = host_ns(CLOCK_MONOTONIC);
        if (ours < last) ++backwards;
        last = ours;
        // A torn read would be far off; preemption only widens the bracket.
        worst = std::max({worst, host_before - ours - 1000, ours - host_after - 1000});
    }
    stop = true;
    writer.join();
    CHECK(backwards == 0);
    CHECK(worst <= 0);
}

TEST_CASE("vDSO: getcpu", "[vdso]") {
    NativeVdso vdso;
    auto options = quick_options();
    SECTION("by system call") {
        VdsoPublisher publisher(vdso.page(), options);
        bool agreed = false;
        for (int i = 0; i < 100 && !agreed; ++i) {
            unsigned cpu = ~0u, node = ~0u;
            int before = sched_getcpu();
            REQUIRE(vdso.getcpu(&cpu, &node, nullptr) == 0);
            agreed = static_cast<int>(cpu) == before && sched_getcpu() == before;
        }
        CHECK(agreed);
    }
    SECTION("fixed by the VMM") {
        options.getcpu = VdsoGetcpu::fixed;
        options.cpu = 3;
        options.node = 1;
        VdsoPublisher publisher(vdso.page(), options);
        unsigned cpu = 0, node = 0;
        CHECK(vdso.getcpu(&cpu, &node, nullptr) == 0);
        CHECK(cpu == 3);
        CHECK(node == 1);
        CHECK(vdso.getcpu(nullptr, nullptr, nullptr) == 0);
    }
    SECTION("rdtscp, where the CPU has it (Linux sets TSC_AUX as the VMM will)") {
        unsigned a, b, c, d;
        bool has_rdtscp = __get_cpuid(0x80000001, &a, &b, &c, &d) && (d & (1u << 27));
        if (has_rdtscp) {
            options.getcpu = VdsoGetcpu::rdtscp;
            VdsoPublisher publisher(vdso.page(), options);
            bool agreed = false;
            for (int i = 0; i < 100 && !agreed; ++i) {
                unsigned cpu = ~0u, node = ~0u, host_cpu = 0, host_node = 0;
                REQUIRE(syscall(SYS_getcpu, &host_cpu, &host_node, nullptr) == 0);
                REQUIRE(vdso.getcpu(&cpu, &node, nullptr) == 0);
                agreed = cpu == host_cpu && node == host_node;
            }
            CHECK(agreed);
        }
    }
}

TEST_CASE("vDSO: the parameter page's size and alignment are checked", "[vdso]") {
    alignas(8) std::byte small[64];
    CHECK_THROWS_AS(VdsoPublisher(std::span(small), quick_options()), ConfigError);
    alignas(8) std::byte page[kVdsoPageSize + 8];
    CHECK_THROWS_AS(VdsoPublisher(std::span(page + 4, kVdsoPageSize), quick_options()),
                    ConfigError);
}

TEST_CASE("vDSO: musl's own lookup and clock_gettime use it", "[vdso]") {
#ifndef MINIVMM_VDSO_MUSL_CHECK
    minivmm::test::skip_test("no musl-gcc when configured (apt-get install musl-tools)",
                             "MINIVMM_REQUIRE_MUSL");
#else
    char path[] = "/tmp/minivmm-vdso-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    auto image = vdso_image();
    REQUIRE(write(fd, image.data(), image.size()) == static_cast<ssize_t>(image.size()));
    close(fd);
    std::string command = std::string(MINIVMM_VDSO_MUSL_CHECK) + " " + path;
    FILE* child = popen(command.c_str(), "r");
    REQUIRE(child != nullptr);
    std::map<std::string, long long> values;
    std::string output;
    char line[256];
    while (std::fgets(line, sizeof line, child)) {
        output += line;
        std::istringstream fields(line);
        std::string key;
        long long value = 0;
        if (fields >> key >> value) values[key] = value;
    }
    int status = pclose(child);
    unlink(path);
    CAPTURE(output);
    CHECK(status == 0);
    // musl found __vdso_clock_gettime (DT_HASH, LINUX_2.6) and its answer
    // follows the page: moved by a second when the page moves.
    CHECK(values.count("monotonic_error_ms"));
    CHECK(std::llabs(values["monotonic_error_ms"]) <= 1);
    CHECK(values["moved_monotonic_ms"] >= 999);
    CHECK(values["moved_monotonic_ms"] <= 1001);
    CHECK(values["moved_realtime_ms"] >= 999);
    CHECK(values["moved_realtime_ms"] <= 1001);
    CHECK(values["cputime_ok"] == 1);
    // sched_getcpu through __vdso_getcpu, fixed at 5 by the page.
    CHECK(values["getcpu"] == 5);
#endif
}

namespace {

// The host's clocks as Linux makes them, simulated: a TSC at 2.1 GHz, a raw
// clock at the TSC's rate, and a MONOTONIC that NTP slews by a rate offset
// (ppm) the test changes. Every reading takes 20 ns of simulated time.
class ModelClocks final : public ClockSource {
  public:
    struct State {
        double t = 5e9;    // true time, ns
        double mono = 3e9; // CLOCK_MONOTONIC
        double ppm = 0;    // NTP's rate offset of MONOTONIC
        std::int64_t realtime_offset = 1'700'000'000'000'000'000;
    };
    explicit ModelClocks(State& state) : s_(state) {}
    static constexpr double kTscPerNs = 2.096029; // no round number of ticks per ns
    static std::uint64_t tsc_at(double t) { return static_cast<std::uint64_t>(t * kTscPerNs); }

    std::uint64_t tsc() override {
        advance(20);
        return tsc_at(s_.t);
    }
    std::int64_t clock_ns(clockid_t clock) override {
        advance(20);
        switch (clock) {
        case CLOCK_MONOTONIC_RAW:
            return static_cast<std::int64_t>(s_.t);
        case CLOCK_REALTIME:
            return static_cast<std::int64_t>(s_.mono) + s_.realtime_offset;
        case CLOCK_BOOTTIME:
            return static_cast<std::int64_t>(s_.mono + 1000);
        case CLOCK_MONOTONIC_COARSE: {
            auto mono = static_cast<std::int64_t>(s_.mono);
            return mono - mono % 4'000'000;
        }
        default:
            return static_cast<std::int64_t>(s_.mono);
        }
    }
    std::int64_t resolution_ns(clockid_t clock) override {
        return clock == CLOCK_MONOTONIC_COARSE || clock == CLOCK_REALTIME_COARSE ? 4'000'000 : 1;
    }
    struct timezone time_zone() override {
        return {};
    }
    void sleep(std::chrono::nanoseconds duration) override {
        advance(static_cast<double>(duration.count()));
    }
    void advance(double ns) {
        s_.t += ns;
        s_.mono += ns * (1 + s_.ppm * 1e-6);
    }

  private:
    State& s_;
};

} // namespace

TEST_CASE("vDSO publisher: follows NTP's slewing within 1 us, never stepping back", "[vdso]") {
    ModelClocks::State state;
    alignas(8) std::byte page[kVdsoPageSize];
    auto clocks = std::make_unique<ModelClocks>(state);
    ModelClocks* model = clocks.get();
    VdsoPublisher publisher(std::span<std::byte>(page), std::move(clocks), quick_options());
    CHECK(std::abs(publisher.tsc_hz() / 1e9 - ModelClocks::kTscPerNs) < 1e-6);

    // The rate offset changes every second, as Linux's NTP changes it at
    // second boundaries, by up to 50 ppm at a time (chrony's steady state
    // changes it by well under 1 ppm; 100 ppm would cost 1 us per 10 ms).
    const double schedule[] = {0, 50, 0, -50, -20, 10, 40, 0};
    std::int64_t worst = 0, worst_real = 0, last = 0, last_raw = 0;
    int backwards = 0;
    const double step = 1e6; // look every 1 ms between the 10 ms updates
    for (double ppm : schedule) {
        state.ppm = ppm;
        for (int tick = 0; tick < 1000; ++tick) {
            model->advance(step);
            const auto& data = publisher.published();
            std::uint64_t tsc = ModelClocks::tsc_at(state.t);
            auto mono = static_cast<std::int64_t>(timeline_ns(data.monotonic, tsc));
            auto raw = static_cast<std::int64_t>(timeline_ns(data.monotonic_raw, tsc));
            worst = std::max(worst, std::abs(mono - static_cast<std::int64_t>(state.mono)));
            worst = std::max(worst, std::abs(raw - static_cast<std::int64_t>(state.t)));
            worst_real = std::max(worst_real, std::abs(mono + data.realtime_offset_ns -
                                                       static_cast<std::int64_t>(state.mono) -
                                                       state.realtime_offset));
            if (mono < last || raw < last_raw) ++backwards;
            last = mono;
            last_raw = raw;
            if (tick % 10 == 9) publisher.update();
        }
    }
    CAPTURE(worst, worst_real);
    CHECK(worst < 1000);
    CHECK(worst_real < 1000);
    CHECK(backwards == 0);

    // Updates that come late (the VMM was busy): the last correction ends
    // after one interval instead of running on.
    worst = 0;
    for (int gap_ms : {50, 200, 500, 30, 1000}) {
        for (int ms = 0; ms < gap_ms; ++ms) {
            model->advance(step);
            auto mono = static_cast<std::int64_t>(
                timeline_ns(publisher.published().monotonic, ModelClocks::tsc_at(state.t)));
            worst = std::max(worst, std::abs(mono - static_cast<std::int64_t>(state.mono)));
            if (mono < last) ++backwards;
            last = mono;
        }
        publisher.update();
    }
    CAPTURE(worst);
    CHECK(worst < 1000);
    CHECK(backwards == 0);

    // Updates far more often than asked for (every 2 us for 100 ms): each
    // one starts where the last one is, to the fraction of a nanosecond, or
    // the lost fractions (half a nanosecond an update) would hold the clock
    // microseconds behind.
    worst = 0;
    for (int i = 0; i < 50'000; ++i) {
        model->advance(2'000);
        publisher.update();
        auto mono = static_cast<std::int64_t>(
            timeline_ns(publisher.published().monotonic, ModelClocks::tsc_at(state.t)));
        worst = std::max(worst, std::abs(mono - static_cast<std::int64_t>(state.mono)));
    }
    CAPTURE(worst);
    CHECK(worst < 1000);

    // The host's wall clock is set: REALTIME follows at the next update,
    // MONOTONIC does not move.
    state.realtime_offset += 1'000'000'000;
    auto mono_before = publisher.published().monotonic;
    publisher.update();
    CHECK(std::abs(publisher.published().realtime_offset_ns - state.realtime_offset) < 1000);
    CHECK(timeline_ns(publisher.published().monotonic, ModelClocks::tsc_at(state.t)) >=
          timeline_ns(mono_before, ModelClocks::tsc_at(state.t)));
}

// Not a check: how far the vDSO's clocks drift from the host's as time since
// the last update grows (what kVdsoUpdateInterval was chosen by).
TEST_CASE("vDSO: drift against time since the update (measurement)", "[.vdso-drift]") {
    NativeVdso vdso;
    VdsoPublisher publisher(vdso.page(), quick_options());
    for (int i = 0; i < 100; ++i) {
        spin_for(kVdsoUpdateInterval);
        publisher.update();
    }
    // And what a call costs, ours and the host's.
    for (auto [name, call] : {std::pair{"vDSO", vdso.clock_gettime},
                              std::pair{"host", static_cast<ClockGettime>(::clock_gettime)}}) {
        timespec ts;
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < 1'000'000; ++i)
            call(CLOCK_MONOTONIC, &ts);
        std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
        std::printf("%s clock_gettime(CLOCK_MONOTONIC): %.1f ns a call\n", name,
                    took.count() / 1e6);
    }
    for (int ms : {0, 1, 5, 10, 20, 50, 100, 200, 500, 1000}) {
        publisher.update();
        spin_for(std::chrono::milliseconds(ms));
        std::printf("%5d ms after an update:", ms);
        for (clockid_t clock : kHresClocks)
            std::printf("  clock %d %+5lld ns", clock,
                        static_cast<long long>(error_ns(vdso, clock)));
        std::printf("\n");
    }
}
