// The control socket end to end (README "Control socket", "Memory hotplug"):
// minivmm-run --api-sock with running guests, driven by ControlClient.
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kvm_support.hpp"
#include "minivmm/console.hpp"
#include "minivmm/control_client.hpp"
#include "minivmm/control_socket.hpp"
#include "minivmm/vm.hpp"
#include "test_util.hpp"

using Catch::Matchers::Contains;
using json = nlohmann::json;
using minivmm::ControlClient;
using minivmm::test::Child;
using minivmm::test::describe;
using minivmm::test::guest_path;

namespace {

// A private directory for the socket, removed afterwards.
struct SocketDir {
    SocketDir() {
        const char* tmp = std::getenv("TMPDIR");
        std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/minivmm-ctl-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
    }
    ~SocketDir() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::string path(const char* name = "api.sock") const { return dir + "/" + name; }
    std::string dir;
};

// minivmm-run with a control socket; waits until the socket accepts.
struct ControlledVm {
    ControlledVm(const SocketDir& d, std::vector<std::string> args, std::string image,
                 std::vector<std::string> guest_args = {})
        : sock(d.path()), child(make_argv(std::move(args), image, guest_args)) {
        for (int i = 0; i < 500; ++i) {
            try {
                ControlClient probe(sock);
                return;
            } catch (const minivmm::ControlError&) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
        FAIL("the control socket never accepted a connection");
    }
    std::vector<std::string> make_argv(std::vector<std::string> args, const std::string& image,
                                       const std::vector<std::string>& guest_args) const {
        // A safety net only (each test ends its VM with quit): generous, since
        // under TSan on an emulated KVM 16 clients' 1600 requests took over 60 s.
        std::vector<std::string> argv = {MINIVMM_RUN_PATH, "--api-sock", sock, "--timeout", "300"};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.push_back(guest_path(image));
        if (!guest_args.empty()) {
            argv.push_back("--");
            argv.insert(argv.end(), guest_args.begin(), guest_args.end());
        }
        return argv;
    }
    std::string sock;
    Child child;
};

json call(ControlClient& c, const std::string& command, json args = json::object(), int id = 7) {
    json req = {{"id", id}, {"command", command}};
    if (!args.empty()) req["arguments"] = std::move(args);
    auto line = c.request(req.dump());
    auto resp = json::parse(line, nullptr, false);
    INFO(line);
    REQUIRE(resp.is_object());
    REQUIRE(resp.contains("id"));
    CHECK(resp["id"] == id);
    return resp;
}

json ok(ControlClient& c, const std::string& command, json args = json::object()) {
    auto resp = call(c, command, std::move(args));
    INFO(resp.dump());
    REQUIRE(resp.contains("return"));
    return resp["return"];
}

std::string error_class(ControlClient& c, const std::string& line) {
    auto resp = json::parse(c.request(line), nullptr, false);
    INFO(line << " -> " << resp.dump());
    REQUIRE(resp.is_object());
    REQUIRE(resp.contains("error"));
    CHECK_FALSE(resp["error"]["desc"].get<std::string>().empty());
    return resp["error"]["class"];
}

// An in-process VM for the concurrency tests: 2 vCPUs, 64 MiB, a time limit,
// console captured, no signal handling (the test binary's own).
minivmm::VmConfig in_process_config(std::string cmdline) {
    minivmm::VmConfig config;
    config.vcpus = 2;
    config.mem_size = 64ull << 20;
    config.timeout = std::chrono::seconds(60);
    config.handle_signals = false;
    config.console = std::make_shared<minivmm::StringConsole>();
    config.cmdline = std::move(cmdline);
    return config;
}

// A 2-vCPU VM of this process running `image` on a thread of its own, for
// the tests that drive the Vm API from several threads. quit() stops it and
// returns how it exited; the destructor does the same if a test failed first.
class RunningVm {
  public:
    RunningVm(const std::string& image, std::string cmdline)
        : config(in_process_config(std::move(cmdline))),
          vm(minivmm::test::kvm(), config, minivmm::load_image_for(guest_path(image), config)),
          runner_([this] { exit_ = vm.run(); }) {}
    RunningVm(const RunningVm&) = delete;
    RunningVm& operator=(const RunningVm&) = delete;
    ~RunningVm() {
        if (runner_.joinable()) quit();
    }
    minivmm::VmExit quit() {
        vm.request_stop({minivmm::VmExit::Kind::quit, 0, -1, "test done"});
        runner_.join();
        return exit_;
    }

    minivmm::VmConfig config;
    minivmm::Vm vm;

  private:
    minivmm::VmExit exit_;
    std::thread runner_;
};

std::uint64_t hypercalls_0(ControlClient& c) {
    auto s = ok(c, "query-stats");
    return s["hypercalls"].contains("0") ? s["hypercalls"]["0"]["total"].get<std::uint64_t>() : 0;
}

} // namespace

TEST_CASE("control socket: status, pause, resume, stats, dirty log and quit on a running guest",
          "[kvm][control]") {
    SocketDir d;
    // hcloop: zero-length console writes (hypercall 0) as fast as it can.
    ControlledVm vm(d, {"--mem", "64M"}, "hcloop.bin", {"1000000000"});
    struct stat st {};
    REQUIRE(::stat(vm.sock.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);

    ControlClient c(vm.sock);
    auto status = ok(c, "query-status");
    CHECK(status["status"] == "running");
    CHECK(status["vcpus"] == 1);
    CHECK(status["mem_size"] == 64u << 20);
    CHECK(status["lock_policy"] == "global");

    // Live counters grow while it runs...
    auto a = hypercalls_0(c);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto b = hypercalls_0(c);
    CHECK(b > a);
    auto stats = ok(c, "query-stats");
    CHECK(stats["exits"]["by_reason"]["io"]["total"].get<std::uint64_t>() >= b);
    CHECK(stats["hypercalls"]["0"]["latency"]["count"].get<std::uint64_t>() > 0);
    CHECK_FALSE(stats["hypercalls"]["0"]["latency"]["buckets_le_ns"].empty());
    CHECK(stats["slot_updates"]["count"].get<std::uint64_t>() >= 1); // boot RAM's slot
    CHECK(stats["slot_lock"]["policy"] == "global");

    // ...and stand still while it is paused.
    CHECK(ok(c, "pause")["status"] == "paused");
    CHECK(ok(c, "query-status")["status"] == "paused");
    auto p1 = hypercalls_0(c);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(hypercalls_0(c) == p1);
    CHECK(ok(c, "pause")["status"] == "paused"); // idempotent
    CHECK(ok(c, "resume")["status"] == "running");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(hypercalls_0(c) > p1);

    // Dirty logging: the guest writes its stack for every hypercall.
    CHECK(error_class(c, R"({"id":1,"command":"dirty-log-sync"})") == "Failed"); // not started
    ok(c, "dirty-log-start");
    CHECK(error_class(c, R"({"id":1,"command":"dirty-log-start"})") == "Failed");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto sync = ok(c, "dirty-log-sync", {{"pages", true}});
    CHECK(sync["mode"] == "bitmap");
    CHECK(sync["dirty_pages"].get<std::uint64_t>() >= 1);
    CHECK(sync["pages"].size() == sync["dirty_pages"].get<std::size_t>());
    CHECK(ok(c, "query-status")["dirty_logging"] == true);
    CHECK_FALSE(ok(c, "dirty-log-sync").contains("pages"));
    ok(c, "dirty-log-stop");

    auto mem = ok(c, "query-memory");
    REQUIRE(mem["address_spaces"].size() >= 1);
    CHECK(mem["address_spaces"][0]["regions"][0]["name"] == "ram");
    CHECK(mem["address_spaces"][0]["slots"][0]["size"] == 64u << 20);

    CHECK(ok(c, "quit").empty());
    auto r = vm.child.finish(std::chrono::seconds(10));
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.err, Contains("quit"));
    CHECK_FALSE(std::filesystem::exists(vm.sock)); // removed on the way out
}

TEST_CASE("memory hotplug: the guest uses hot-added RAM, releases it, and sees it go away",
          "[kvm][control]") {
    SocketDir d;
    ControlledVm vm(d, {"--mem", "64M", "--vcpus", "2"}, "hotplug.bin");
    ControlClient c(vm.sock);
    const std::uint64_t a = 1ull << 30, b = 2ull << 30;
    auto add_error = [&](json args) {
        return error_class(c,
                           json{{"id", 3}, {"command", "memory-add"}, {"arguments", args}}.dump());
    };
    // Refused, each with a reason, and nothing changes.
    CHECK(add_error({{"gpa", 0x2000000}, {"size", 2 << 20}}) == "Failed");      // in boot RAM
    CHECK(add_error({{"gpa", a + 4096}, {"size", 2 << 20}}) == "Failed");       // misaligned
    CHECK(add_error({{"gpa", a}, {"size", 4096}}) == "Failed");                 // misaligned size
    CHECK(add_error({{"gpa", a}, {"size", 0}}) == "Failed");                    // empty
    CHECK(add_error({{"gpa", 63ull << 30}, {"size", 2ull << 30}}) == "Failed"); // above 64 GiB
    CHECK(add_error({{"gpa", "0x40000000"}, {"size", 2 << 20}}) == "InvalidArgument");
    CHECK(add_error({{"gpa", a}}) == "InvalidArgument"); // no size
    CHECK(ok(c, "query-memory")["hotplug"].empty());

    ok(c, "memory-add", {{"gpa", a}, {"size", 64 << 20}});
    CHECK(add_error({{"gpa", a + (32 << 20)}, {"size", 64 << 20}}) == "Failed"); // overlaps A
    // The guest claims it, writes and reads every page back.
    REQUIRE(vm.child.wait_for_stdout("pages written, 0 bad", std::chrono::seconds(20)));
    auto hot = ok(c, "query-memory")["hotplug"];
    REQUIRE(hot.size() == 1);
    CHECK(hot[0]["claimed"] == true);
    auto slots = ok(c, "query-memory")["address_spaces"][0]["slots"];
    CHECK(std::any_of(slots.begin(), slots.end(), [&](const json& s) { return s["gpa"] == a; }));
    // Removing RAM the guest holds is refused.
    auto refused = call(c, "memory-remove", {{"gpa", a}});
    REQUIRE(refused.contains("error"));
    CHECK_THAT(refused["error"]["desc"].get<std::string>(), Contains("claimed"));
    CHECK(call(c, "memory-remove", {{"gpa", a + (2 << 20)}}).contains("error")); // not a start
    // B is the guest's signal to let A go.
    ok(c, "memory-add", {{"gpa", b}, {"size", 2 << 20}});
    REQUIRE(vm.child.wait_for_stdout("hotplug: released", std::chrono::seconds(20)));
    ok(c, "memory-remove", {{"gpa", a}});
    auto r = vm.child.finish(std::chrono::seconds(20));
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Contains("hotplug: gone 0x40000000"));
}

TEST_CASE("memory hotplug: touching removed RAM faults in the guest, not in the VMM",
          "[kvm][control]") {
    SocketDir d;
    ControlledVm vm(d, {"--mem", "64M"}, "hotplug.bin", {"touch-after"});
    ControlClient c(vm.sock);
    ok(c, "memory-add", {{"gpa", 1ull << 30}, {"size", 2 << 20}});
    REQUIRE(vm.child.wait_for_stdout("0 bad", std::chrono::seconds(20)));
    ok(c, "memory-add", {{"gpa", 2ull << 30}, {"size", 2 << 20}});
    REQUIRE(vm.child.wait_for_stdout("released", std::chrono::seconds(20)));
    ok(c, "memory-remove", {{"gpa", 1ull << 30}});
    auto r = vm.child.finish(std::chrono::seconds(20));
    INFO(describe(r));
    CHECK(r.status == 126); // guest fault
    CHECK_THAT(r.err, Contains("#PF") && Contains("cr2=0x40000000"));
    CHECK_THAT(r.out, !Contains("after removal"));
}

TEST_CASE("control socket: bad input gets an error object and the connection goes on",
          "[kvm][control]") {
    SocketDir d;
    ControlledVm vm(d, {"--mem", "64M"}, "spin.bin");
    ControlClient c(vm.sock);
    CHECK(error_class(c, "{not json") == "ParseError");
    CHECK(error_class(c, "[1,2]") == "InvalidRequest");
    CHECK(error_class(c, R"({"id":1})") == "InvalidRequest");
    CHECK(error_class(c, R"({"id":1,"command":5})") == "InvalidRequest");
    CHECK(error_class(c, R"({"id":1,"command":"query-status","extra":1})") == "InvalidRequest");
    CHECK(error_class(c, R"({"id":1,"command":"no-such"})") == "CommandNotFound");
    CHECK(error_class(c, R"({"id":1,"command":"query-status","arguments":[]})") ==
          "InvalidArgument");
    CHECK(error_class(c, R"({"id":1,"command":"query-status","arguments":{"x":1}})") ==
          "InvalidArgument");
    CHECK(error_class(c, R"({"id":1,"command":"memory-remove","arguments":{"gpa":-1}})") ==
          "InvalidArgument");
    CHECK(error_class(c, R"({"id":1,"command":"memory-remove","arguments":{"gpa":1.5}})") ==
          "InvalidArgument");
    // Arguments are checked before the command runs (this one would also be
    // refused for not logging).
    CHECK(error_class(c, R"({"id":1,"command":"dirty-log-sync","arguments":{"pages":"yes"}})") ==
          "InvalidArgument");
    // Any JSON id comes back as it was.
    auto resp = json::parse(c.request(R"({"id":{"a":[1,"x"]},"command":"query-status"})"));
    CHECK(resp["id"] == json{{"a", {1, "x"}}});
    // A line over the limit: one error, skipped to its newline, then normal service.
    std::string huge =
        R"({"id":1,"command":"query-status","pad":")" + std::string(70000, 'x') + "\"}";
    CHECK(error_class(c, huge) == "LineTooLong");
    CHECK(ok(c, "query-status")["status"] == "running");
    // A client that leaves mid-request does not disturb the others.
    {
        ControlClient quitter(vm.sock);
        quitter.send(R"({"id":1,"command":"query-st)");
    }
    CHECK(ok(c, "query-status")["status"] == "running");
    // A flood: 5000 requests sent before reading any answer; all answered, in order.
    std::string burst;
    for (int i = 0; i < 5000; ++i)
        burst += json{{"id", i}, {"command", "query-status"}}.dump() + "\n";
    c.send(burst);
    // Meanwhile another client is served (the flood is handled a line at a time).
    std::string other;
    std::thread second([&] {
        try {
            ControlClient o(vm.sock);
            other = o.request(R"({"id":"second","command":"query-status"})");
        } catch (const std::exception& e) {
            other = e.what();
        }
    });
    second.join();
    CHECK_THAT(other, Contains(R"("id":"second")") && Contains(R"("return")"));
    for (int i = 0; i < 5000; ++i) {
        auto r = json::parse(c.read_line());
        REQUIRE(r["id"] == i);
        REQUIRE(r.contains("return"));
    }
    vm.child.send(SIGTERM);
    auto r = vm.child.finish(std::chrono::seconds(10));
    CHECK(r.status == 143);
}

namespace {

// Runs `fn` on a thread with a 512 KiB stack (an event loop thread of a
// library user may have no more) and returns its result.
std::string on_small_stack(const std::function<std::string()>& fn) {
    struct Job {
        const std::function<std::string()>* fn;
        std::string out;
    } job{&fn, {}};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    pthread_t t;
    const int rc = pthread_create(
        &t, &attr,
        [](void* p) -> void* {
            auto* j = static_cast<Job*>(p);
            j->out = (*j->fn)();
            return nullptr;
        },
        &job);
    pthread_attr_destroy(&attr);
    REQUIRE(rc == 0);
    pthread_join(t, nullptr);
    return job.out;
}

} // namespace

TEST_CASE("control in process: JSON nested deeper than 64 levels is refused, not recursed into",
          "[kvm][control]") {
    // Found while fuzzing the control JSON (fuzz_control, ASan): a 60 KB
    // line of nested arrays as the id or an argument overflowed the stack,
    // as the request was copied and the id printed one recursion per level.
    minivmm::VmConfig config;
    config.mem_size = 64ull << 20;
    config.handle_signals = false;
    config.console = std::make_shared<minivmm::StringConsole>();
    minivmm::Vm vm(minivmm::test::kvm(), config,
                   minivmm::load_image_for(guest_path("spin.bin"), config));
    auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    auto handle = [&](const std::string& line) {
        return json::parse(on_small_stack([&] { return minivmm::control_request(vm, line); }));
    };
    constexpr int kDeep = 30000;
    auto r = handle(R"({"id":)" + nested(kDeep) + R"(,"command":"query-status"})");
    CHECK(r["id"].is_null());
    CHECK(r["error"]["class"] == "InvalidRequest");
    CHECK_THAT(r["error"]["desc"].get<std::string>(), Contains("deeper than 64"));
    r = handle(R"({"id":7,"command":"query-status","arguments":{"x":)" + nested(kDeep) + "}}");
    CHECK(r["id"].is_null()); // not read: what is left of the request may be a cut id
    CHECK(r["error"]["class"] == "InvalidRequest");
    CHECK(handle(nested(kDeep))["error"]["class"] == "InvalidRequest");
    // The request object and 63 levels inside it are fine; one more is not.
    r = handle(R"({"id":)" + nested(63) + R"(,"command":"query-status"})");
    CHECK(r.contains("return"));
    CHECK(r["id"].dump() == nested(63));
    r = handle(R"({"id":)" + nested(64) + R"(,"command":"query-status"})");
    CHECK(r["error"]["class"] == "InvalidRequest");
}

TEST_CASE("control socket: many clients at once, and one too many", "[kvm][control]") {
    SocketDir d;
    ControlledVm vm(d, {"--mem", "64M", "--vcpus", "2"}, "spin.bin");
    constexpr int kClients = 16, kRequests = 100;
    std::vector<std::unique_ptr<ControlClient>> clients;
    for (int i = 0; i < kClients; ++i)
        clients.push_back(std::make_unique<ControlClient>(vm.sock));
    // The 17th is told why and hung up on.
    {
        ControlClient extra(vm.sock);
        auto line = json::parse(extra.read_line());
        CHECK(line["error"]["class"] == "TooManyClients");
    }
    std::atomic<int> good{0};
    std::mutex error_mutex;
    std::string first_error; // a client thread's exception, reported below
    std::vector<std::thread> threads;
    for (int t = 0; t < kClients; ++t)
        threads.emplace_back([&, t] {
            try {
                for (int i = 0; i < kRequests; ++i) {
                    int id = t * 1000 + i;
                    auto r = json::parse(clients[t]->request(
                        json{{"id", id}, {"command", i % 2 ? "query-stats" : "query-status"}}
                            .dump()));
                    if (r["id"] == id && r.contains("return")) good.fetch_add(1);
                }
            } catch (const std::exception& e) {
                std::lock_guard lock(error_mutex);
                if (first_error.empty()) first_error = e.what();
            }
        });
    for (auto& t : threads)
        t.join();
    CAPTURE(first_error);
    CHECK(first_error.empty());
    CHECK(good.load() == kClients * kRequests);
    clients.clear(); // the slots free up
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ControlClient again(vm.sock);
    CHECK(ok(again, "query-status")["status"] == "running");
    ok(again, "quit");
    CHECK(vm.child.finish(std::chrono::seconds(10)).status == 0);
}

TEST_CASE("control socket: a stale socket is replaced, a live one or a file is refused",
          "[kvm][control]") {
    SocketDir d;
    {
        ControlledVm vm(d, {"--mem", "64M"}, "spin.bin");
        // A second VMM on the same path is refused while the first serves it.
        auto r = minivmm::test::run_minivmm(
            {"--mem", "64M", "--api-sock", vm.sock, guest_path("spin.bin")});
        CHECK(r.status == 125);
        CHECK_THAT(r.err, Contains("another process is serving it"));
        vm.child.send(SIGKILL); // dies without removing its socket
        vm.child.finish(std::chrono::seconds(10));
    }
    REQUIRE(std::filesystem::exists(d.path()));
    {
        ControlledVm vm(d, {"--mem", "64M"}, "spin.bin"); // replaces the stale one
        ControlClient c(vm.sock);
        ok(c, "quit");
        CHECK(vm.child.finish(std::chrono::seconds(10)).status == 0);
    }
    minivmm::test::TempFile file(minivmm::test::to_bytes("not a socket"));
    auto r = minivmm::test::run_minivmm(
        {"--mem", "64M", "--api-sock", file.path(), guest_path("spin.bin")});
    CHECK(r.status == 125);
    CHECK_THAT(r.err, Contains("not a socket"));
}

TEST_CASE("control in process: hotplug, pause and stats from several threads while vCPUs run",
          "[kvm][control][concurrency]") {
    RunningVm running("hcloop.bin", "1000000000");
    minivmm::Vm& vm = running.vm;

    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    // Two threads hot-add and remove their own regions; one pauses and
    // resumes; one reads stats and the memory map through Vm::control.
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            const std::uint64_t gpa = (std::uint64_t{1} + static_cast<std::uint64_t>(t)) << 30;
            for (int i = 0; i < 30; ++i) {
                try {
                    vm.add_ram(gpa, 4ull << 20);
                    vm.remove_ram(gpa);
                } catch (const std::exception&) {
                    failures.fetch_add(1);
                }
            }
        });
    threads.emplace_back([&] {
        while (!stop.load()) {
            if (!vm.pause(std::chrono::seconds(5))) failures.fetch_add(1);
            vm.resume();
        }
    });
    threads.emplace_back([&] {
        while (!stop.load()) {
            auto s =
                json::parse(minivmm::control_request(vm, R"({"id":1,"command":"query-stats"})"));
            auto m =
                json::parse(minivmm::control_request(vm, R"({"id":2,"command":"query-memory"})"));
            if (!s.contains("return") || !m.contains("return")) failures.fetch_add(1);
        }
    });
    threads[0].join();
    threads[1].join();
    stop.store(true);
    threads[2].join();
    threads[3].join();
    CHECK(failures.load() == 0);
    CHECK(vm.hotplug_ram().empty());
    auto stats = vm.stats();
    CHECK(stats.ram_adds.count == 60);
    CHECK(stats.ram_removes.count == 60);
    CHECK(stats.slot_updates.count >= 121); // boot RAM + one add and one delete per round
    CHECK(running.quit().kind == minivmm::VmExit::Kind::quit);
}

TEST_CASE("control socket: dirty-log-sync through dirty rings (--dirty-ring)", "[kvm][control]") {
    SocketDir d;
    ControlledVm vm(d, {"--mem", "64M", "--dirty-ring", "4096"}, "hcloop.bin", {"1000000000"});
    ControlClient c(vm.sock);
    ok(c, "dirty-log-start");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto sync = ok(c, "dirty-log-sync");
    CHECK(sync["mode"] == "ring");
    CHECK(sync["dirty_pages"].get<std::uint64_t>() >= 1);
    ok(c, "dirty-log-stop");
    ok(c, "quit");
    CHECK(vm.child.finish(std::chrono::seconds(10)).status == 0);
}

TEST_CASE("pause: back-to-back pause and resume never lose a kick on a guest that never exits",
          "[kvm][control][concurrency]") {
    // spin: pure register loops, no exits. A pause whose kick a resuming vCPU
    // wiped out would leave that vCPU in KVM_RUN for good.
    RunningVm running("spin.bin", "");
    minivmm::Vm& vm = running.vm;
    // Both vCPUs are in the guest once vCPU 0 has printed "spinning".
    for (int i = 0; i < 2000 && vm.stats().exits.hypercalls[0] == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(vm.stats().exits.hypercalls[0] >= 1);
    int failed = 0;
    for (int i = 0; i < 300; ++i) {
        if (!vm.pause(std::chrono::seconds(10))) ++failed;
        vm.resume();
    }
    CHECK(failed == 0);
    CHECK(running.quit().kind == minivmm::VmExit::Kind::quit);
}
