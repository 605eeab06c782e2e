// Unmodified Linux programs under `minivmm-run --linux` (issue 16): every
// case of the project's test programs (tests/linux, listed in cases.list;
// static and dynamically linked) runs natively and in the guest, and the
// two must print the same and end the same way. Then Debian's
// busybox-static, Debian's own dynamically linked coreutils, sb_static (the
// sysbench cores as one static executable) and the loader's refusals.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "kvm_support.hpp"
#include "native_workloads.hpp"
#include "skip.hpp"

using Catch::Matchers::Contains;
using minivmm::test::Child;
using minivmm::test::describe;
using minivmm::test::line_count;
using minivmm::test::ProcessResult;
using minivmm::test::run_minivmm;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// One line of cases.list (tests/linux/README.md): key=value tokens.
struct LinuxCase {
    std::string name;
    std::string program; // lp_hello, lp_files, ...
    std::string path;
    std::string expect; // exit:N, signal:N or timeout
    std::string timeout = "0";
    bool temp_dir = false;
    bool unprivileged = false; // its native output differs by design
    std::vector<std::string> env;
    std::vector<std::string> args;
};

std::vector<LinuxCase> read_cases() {
    std::ifstream in(MINIVMM_LINUX_TEST_CASES);
    REQUIRE(in.good());
    std::vector<LinuxCase> cases;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        LinuxCase c;
        std::istringstream words(line);
        std::string word;
        while (words >> word) {
            const auto eq = word.find('=');
            REQUIRE(eq != std::string::npos);
            const auto key = word.substr(0, eq);
            auto value = word.substr(eq + 1);
            if (key == "case") {
                c.name = value;
            } else if (key == "program") {
                c.program = value;
            } else if (key == "path") {
                c.path = value;
            } else if (key == "expect") {
                c.expect = value;
            } else if (key == "timeout") {
                c.timeout = value;
            } else if (key == "workdir") {
                c.temp_dir = value == "temp";
            } else if (key == "native") {
                c.unprivileged = value == "unprivileged";
            } else if (key == "env") {
                c.env.push_back(value);
            } else if (key == "arg") {
                c.args.push_back(value);
            }
        }
        cases.push_back(std::move(c));
    }
    return cases;
}

// A fresh empty directory, removed with what is left in it.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "minivmm-linux-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    bool empty() const { return fs::is_empty(path_); }

  private:
    fs::path path_;
};

// The shell's view of how a run ended: the status, or 128 + the signal.
int shell_status(const ProcessResult& r) {
    return r.signal != 0 ? 128 + r.signal : r.status;
}

int expected_status(const std::string& expect) {
    if (expect == "timeout") {
        return 124;
    }
    const auto n = std::stoi(expect.substr(expect.find(':') + 1));
    return expect.starts_with("signal:") ? 128 + n : n;
}

// Natively: an empty environment but the case's (as under minivmm), in
// `dir`, stopped by timeout(1) (status 124) where the case expects that.
ProcessResult run_native(const LinuxCase& c, const fs::path& dir) {
    std::vector<std::string> argv;
    if (c.expect == "timeout") {
        argv = {"/usr/bin/timeout", c.timeout};
    }
    argv.insert(argv.end(), {"/usr/bin/env", "-i", "-C", dir.string()});
    argv.insert(argv.end(), c.env.begin(), c.env.end());
    argv.push_back(c.path);
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Child child(argv);
    return child.finish(60s);
}

ProcessResult run_guest(const LinuxCase& c, const fs::path& dir) {
    std::vector<std::string> args = {"--workdir", dir.string()};
    if (c.expect == "timeout") {
        args.insert(args.end(), {"--timeout", c.timeout});
    }
    for (const auto& kv : c.env) {
        args.insert(args.end(), {"--env", kv});
    }
    args.insert(args.end(), {"--linux", c.path});
    args.insert(args.end(), c.args.begin(), c.args.end());
    return run_minivmm(args, 120s);
}

// Runs every case of `program` natively and in the guest.
void check_program(const std::string& program) {
    const auto cases = read_cases();
    int ran = 0;
    for (const auto& c : cases) {
        if (c.program != program) {
            continue;
        }
        ++ran;
        INFO("case " << c.name);
        TempDir guest_dir;
        const auto guest = run_guest(c, c.temp_dir ? guest_dir.path() : fs::current_path());
        INFO("guest: " << describe(guest));
        REQUIRE_FALSE(guest.hung);
        CHECK(shell_status(guest) == expected_status(c.expect));
        if (c.temp_dir) {
            CHECK(guest_dir.empty());
        }
        // A program's end by a signal is one line on stderr, as a shell
        // reports it; otherwise the VMM says nothing.
        if (c.expect.starts_with("signal:")) {
            CHECK(line_count(guest.err) == 1);
            CHECK_THAT(guest.err, Contains("killed by SIG"));
        } else {
            // Warnings (an unknown system call) may be there, a verdict not.
            CHECK_THAT(guest.err, !Contains("killed by"));
        }
        if (c.unprivileged) {
            // Natively it must run as nobody and is refused with EACCES; the
            // sandbox says EROFS: only the guest's own verdict counts.
            CHECK_THAT(guest.out, Contains(program + ": ok"));
            CHECK_THAT(guest.out, Contains("EROFS"));
            continue;
        }
        TempDir native_dir;
        const auto native = run_native(c, c.temp_dir ? native_dir.path() : fs::current_path());
        INFO("native: " << describe(native));
        REQUIRE_FALSE(native.hung);
        CHECK(shell_status(native) == expected_status(c.expect));
        CHECK(guest.out == native.out);
    }
    if (ran == 0) {
        minivmm::test::skip_test("no case of " + program + " in " MINIVMM_LINUX_TEST_CASES);
    }
}

} // namespace

TEST_CASE("Linux programs: lp_hello (argv, environment, auxv, vDSO) as natively", "[kvm][linux]") {
    check_program("lp_hello");
}

TEST_CASE("Linux programs: lp_files (file system calls, sandbox) as natively", "[kvm][linux]") {
    check_program("lp_files");
}

TEST_CASE("Linux programs: lp_memory (brk, mmap, mprotect, mremap) as natively", "[kvm][linux]") {
    check_program("lp_memory");
}

TEST_CASE("Linux programs: lp_time (clocks through the vDSO and system calls) as natively",
          "[kvm][linux]") {
    check_program("lp_time");
}

TEST_CASE("Linux programs: lp_process (ids, limits, signals recorded) as natively",
          "[kvm][linux]") {
    check_program("lp_process");
}

TEST_CASE("Linux programs: lp_greet (a library of its own, or ld.so's error without it)",
          "[kvm][linux][dynamic]") {
    check_program("lp_greet");
    // Without the library, what ends the program is ld.so's own report.
    const auto r = run_minivmm({"--linux", MINIVMM_LINUX_TEST_DIR "/lp_greet.glibc-dyn"}, 120s);
    INFO(describe(r));
    CHECK(shell_status(r) == 127);
    CHECK_THAT(r.err, Contains("error while loading shared libraries: liblp_greet.so: cannot "
                               "open shared object file"));
    CHECK(r.out.empty());
}

TEST_CASE("Linux programs: lp_exit (statuses, faults as signals, bad pointers, timeout)",
          "[kvm][linux]") {
    check_program("lp_exit");
}

TEST_CASE("Linux programs: lp_threads (pthreads: clone, futexes, robust lists) as natively",
          "[kvm][linux][threads]") {
    check_program("lp_threads");
}

TEST_CASE("Linux programs: lp_signals (handlers, frames, timers, faults) as natively",
          "[kvm][linux][signals]") {
    // Every case prints what the native run prints: handlers run on the
    // right thread and stack, rt_sigreturn restores every register and the
    // FPU (the interval-timer loop), and faults reach their handlers.
    check_program("lp_signals");
}

TEST_CASE("Linux programs: signals end the program as their default actions do",
          "[kvm][linux][signals]") {
    // alarm with no handler: SIGALRM's default, sent by the interval timer
    // while the program spins in user mode.
    auto r = run_minivmm({"--linux", MINIVMM_LINUX_TEST_DIR "/lp_signals.glibc", "alarm"}, 120s);
    INFO(describe(r));
    CHECK(shell_status(r) == 128 + 14);
    CHECK(line_count(r.err) == 1);
    CHECK_THAT(r.err, Contains("SIGALRM"));
    CHECK_THAT(r.err, Contains("timer"));
    // A fault in a SIGSEGV handler (SIGSEGV blocked there): the end.
    r = run_minivmm({"--linux", MINIVMM_LINUX_TEST_DIR "/lp_signals.glibc", "noreturn"}, 120s);
    INFO(describe(r));
    CHECK(shell_status(r) == 128 + 11);
    CHECK(line_count(r.err) == 1);
}

TEST_CASE("Linux programs: --vcpus bounds the threads at once, EAGAIN beyond",
          "[kvm][linux][threads]") {
    // 3 waiting threads beside the main one fill 4 vCPUs; pthread_create
    // then fails as beyond RLIMIT_NPROC, and the program goes on.
    for (const char* libc : {"glibc", "musl"}) {
        const std::string path = std::string(MINIVMM_LINUX_TEST_DIR "/lp_threads.") + libc;
        if (::access(path.c_str(), X_OK) != 0) continue;
        INFO(path);
        const auto r = run_minivmm({"--vcpus", "4", "--linux", path, "limit", "20"}, 120s);
        INFO(describe(r));
        CHECK(shell_status(r) == 0);
        CHECK(r.out == "threads started: 3 of 20, then EAGAIN\n");
    }
    // Threads that come and go reuse the vCPUs of those that ended: lp_threads
    // starts 11 threads in all, at most 4 at once.
    const auto r =
        run_minivmm({"--vcpus", "5", "--linux", MINIVMM_LINUX_TEST_DIR "/lp_threads.glibc"}, 120s);
    INFO(describe(r));
    CHECK(shell_status(r) == 0);
    CHECK_THAT(r.out, Contains("lp_threads: ok"));
}

TEST_CASE("Linux programs: a thread that faults while others run ends the program, each time",
          "[kvm][linux][threads]") {
    for (int i = 0; i < 20; ++i) {
        const auto r =
            run_minivmm({"--linux", MINIVMM_LINUX_TEST_DIR "/lp_threads.glibc", "fault"}, 60s);
        INFO("run " << i << ": " << describe(r));
        REQUIRE(shell_status(r) == 139);
        REQUIRE(line_count(r.err) == 1);
    }
}

// ---- Debian's busybox-static, unmodified ------------------------------------

namespace {

constexpr const char* kBusybox = "/bin/busybox";

void write_file(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// `n` bytes from a fixed xorshift sequence: incompressible, the same every run.
std::string pseudo_random_bytes(std::size_t n) {
    std::string bytes(n, '\0');
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    for (std::size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(bytes.data() + i, &x, std::min<std::size_t>(8, n - i));
    }
    return bytes;
}

// `busybox ARGS...` in the guest, the program's working directory `dir`.
ProcessResult busybox_guest(const fs::path& dir, const std::vector<std::string>& args,
                            std::chrono::milliseconds limit = 120s) {
    std::vector<std::string> a = {"--workdir", dir.string(), "--linux", kBusybox};
    a.insert(a.end(), args.begin(), args.end());
    return run_minivmm(a, limit);
}

// The same natively, with an empty environment as in the guest.
ProcessResult run_native_in(const fs::path& dir, const std::vector<std::string>& command) {
    std::vector<std::string> argv = {"/usr/bin/env", "-i", "-C", dir.string()};
    argv.insert(argv.end(), command.begin(), command.end());
    Child child(argv);
    return child.finish(120s);
}

ProcessResult busybox_native(const fs::path& dir, const std::vector<std::string>& args) {
    std::vector<std::string> command = {kBusybox};
    command.insert(command.end(), args.begin(), args.end());
    return run_native_in(dir, command);
}

void require_busybox() {
    if (::access(kBusybox, X_OK) != 0) {
        minivmm::test::skip_test(std::string(kBusybox) +
                                 " is missing (apt-get install busybox-static)");
    }
}

// Both runs exit 0 and print the same.
void check_same(const ProcessResult& guest, const ProcessResult& native) {
    INFO("guest: " << describe(guest));
    INFO("native: " << describe(native));
    CHECK(shell_status(guest) == 0);
    CHECK(shell_status(native) == 0);
    CHECK(guest.out == native.out);
}

} // namespace

TEST_CASE("busybox: echo, cat, ls -l, sort, wc as natively", "[kvm][linux][busybox]") {
    require_busybox();
    TempDir dir;
    write_file(dir.path() / "lines.txt", "pear\napple\nfig\nbanana\napple\ncherry\n");
    write_file(dir.path() / "small.bin", pseudo_random_bytes(3000));
    fs::create_directory(dir.path() / "sub");
    write_file(dir.path() / "sub" / "inner.txt", "inside\n");

    auto echo = busybox_guest(dir.path(), {"echo", "hello,", "busybox"});
    INFO(describe(echo));
    CHECK(shell_status(echo) == 0);
    CHECK(echo.out == "hello, busybox\n");

    for (const auto& args : std::vector<std::vector<std::string>>{
             {"cat", "lines.txt", "sub/inner.txt"},
             {"ls", "-l"},
             {"ls", "-la", "--full-time", "sub"},
             {"sort", "lines.txt"},
             {"sort", "-u", "-r", "lines.txt"},
             {"wc", "lines.txt", "small.bin"},
             {"wc", "-l", "-c", "lines.txt"},
         }) {
        INFO("busybox " << args[0] << " " << args[1]);
        check_same(busybox_guest(dir.path(), args), busybox_native(dir.path(), args));
    }
}

TEST_CASE("busybox: sha256sum of a 100 MiB file equals the host's digest",
          "[kvm][linux][busybox]") {
    require_busybox();
    TempDir dir;
    write_file(dir.path() / "big.bin", pseudo_random_bytes(100u << 20));
    const auto guest = busybox_guest(dir.path(), {"sha256sum", "big.bin"}, 600s);
    const auto host = run_native_in(dir.path(), {"sha256sum", "big.bin"});
    INFO("guest: " << describe(guest));
    INFO("host: " << describe(host));
    REQUIRE(shell_status(host) == 0);
    CHECK(shell_status(guest) == 0);
    CHECK(guest.out.size() == 64 + 2 + 7 + 1); // digest, two spaces, name, newline
    CHECK(guest.out == host.out);
}

TEST_CASE("busybox: gzip to a file and gunzip back, through the guest's files",
          "[kvm][linux][busybox]") {
    require_busybox();
    TempDir dir;
    std::string text;
    for (int i = 0; i < 20000; ++i) {
        text += "line " + std::to_string(i * 7919 % 10007) + " of a compressible file\n";
    }
    const auto data = text + pseudo_random_bytes(200000);
    write_file(dir.path() / "data", data);
    // gzip -k writes data.gz beside data (openat O_CREAT, write, fchmod,
    // utimes, close): a file the guest creates in its working directory.
    auto zip = busybox_guest(dir.path(), {"gzip", "-k", "-9", "data"});
    INFO(describe(zip));
    REQUIRE(shell_status(zip) == 0);
    const auto gz = read_file(dir.path() / "data.gz");
    CHECK(gz.size() < data.size());
    // The host's gzip reads what the guest wrote; the guest reads it back too.
    auto host = run_native_in(dir.path(), {"gzip", "-d", "-c", "data.gz"});
    CHECK(shell_status(host) == 0);
    CHECK(host.out == data);
    auto unzip = busybox_guest(dir.path(), {"gunzip", "-c", "data.gz"});
    INFO(describe(unzip).substr(0, 300));
    CHECK(shell_status(unzip) == 0);
    CHECK(unzip.out == data);
    // And busybox natively writes the same compressed bytes.
    fs::rename(dir.path() / "data.gz", dir.path() / "guest.gz");
    REQUIRE(shell_status(busybox_native(dir.path(), {"gzip", "-k", "-9", "data"})) == 0);
    CHECK(read_file(dir.path() / "data.gz") == gz);
}

TEST_CASE("busybox: sh -c runs builtins, and a pipeline needs fork and says so",
          "[kvm][linux][busybox]") {
    require_busybox();
    TempDir dir;
    fs::create_directory(dir.path() / "sub");
    const std::string script = "x=$((6 * 7)); echo \"x=$x\"; for w in one two three; do "
                               "echo \"word $w\"; done; cd sub && pwd; "
                               "test -d /etc && echo etc-is-dir; printf '%s-%d\\n' p 5; exit 3";
    const auto guest = busybox_guest(dir.path(), {"sh", "-c", script});
    const auto native = busybox_native(dir.path(), {"sh", "-c", script});
    INFO("guest: " << describe(guest));
    INFO("native: " << describe(native));
    CHECK(shell_status(native) == 3);
    CHECK(shell_status(guest) == 3);
    CHECK(guest.out == native.out);
    // No fork, vfork or clone for a child process before part 2: the shell
    // reports it and fails; the VMM neither crashes nor hangs.
    const auto pipeline = busybox_guest(dir.path(), {"sh", "-c", "echo a | cat"}, 60s);
    INFO("pipeline: " << describe(pipeline));
    REQUIRE_FALSE(pipeline.hung);
    CHECK(shell_status(pipeline) != 0);
    CHECK(shell_status(pipeline) < 126);
}

// ---- Debian's dynamically linked programs, unmodified -----------------------

namespace {

// `command` (a program's path, then its arguments) in the guest, in `dir`.
ProcessResult guest_in(const fs::path& dir, const std::vector<std::string>& command,
                       std::chrono::milliseconds limit = 120s) {
    std::vector<std::string> a = {"--workdir", dir.string(), "--linux"};
    a.insert(a.end(), command.begin(), command.end());
    return run_minivmm(a, limit);
}

} // namespace

TEST_CASE("dynamic: Debian's echo, cat, ls -l, sha256sum as natively", "[kvm][linux][dynamic]") {
    TempDir dir;
    write_file(dir.path() / "lines.txt", "pear\napple\nfig\n");
    write_file(dir.path() / "data.bin", pseudo_random_bytes(1u << 20));
    fs::create_directory(dir.path() / "sub");
    write_file(dir.path() / "sub" / "inner.txt", "inside\n");

    const auto echo = guest_in(dir.path(), {"/bin/echo", "hello"});
    INFO(describe(echo));
    CHECK(shell_status(echo) == 0);
    CHECK(echo.out == "hello\n");

    for (const auto& command : std::vector<std::vector<std::string>>{
             {"/bin/echo", "hello", "from", "coreutils"},
             {"/bin/cat", "lines.txt", "sub/inner.txt"},
             {"/bin/ls", "-l", dir.path().string()},
             {"/bin/ls", "-la", "--full-time", "sub"},
             {"/usr/bin/sha256sum", "data.bin", "lines.txt"},
         }) {
        INFO(command[0] << " " << command[1]);
        check_same(guest_in(dir.path(), command), run_native_in(dir.path(), command));
    }
}

// ---- sb_static: the sysbench cores as one static executable -----------------

TEST_CASE("sb_static: the same binary in the guest computes what it does natively",
          "[kvm][linux][sb_static]") {
    struct Case {
        const char* test;
        const char* options;
    };
    const Case cases[] = {
        {"cpu", "--cpu-max-prime=2000 --events=50 --time=0"},
        {"memory", "--memory-block-size=4K --memory-total-size=8M --time=0"},
        {"memory", "--memory-block-size=8K --memory-total-size=2M --memory-oper=touch --time=0"},
        {"mutex", "--mutex-num=16 --mutex-locks=1000 --mutex-loops=10 --time=0"},
        {"threads", "--events=50 --thread-yields=10 --thread-yield=sched --time=0"},
        {"fileio", "--file-num=4 --file-total-size=1M --file-block-size=4K --events=300 --time=0"},
    };
    std::vector<std::string> binaries = {MINIVMM_SB_STATIC_GLIBC};
#ifdef MINIVMM_SB_STATIC_MUSL
    binaries.emplace_back(MINIVMM_SB_STATIC_MUSL);
#endif
    for (const auto& binary : binaries) {
        for (const auto& c : cases) {
            INFO(binary << " " << c.test << " " << c.options);
            std::vector<std::string> args = {c.test};
            std::istringstream words(c.options);
            for (std::string w; words >> w;) {
                args.push_back(w);
            }
            TempDir guest_dir;
            std::vector<std::string> run = {"--workdir", guest_dir.path().string(), "--linux",
                                            binary};
            run.insert(run.end(), args.begin(), args.end());
            const auto guest = run_minivmm(run, 120s);
            TempDir native_dir;
            std::vector<std::string> command = {binary};
            command.insert(command.end(), args.begin(), args.end());
            const auto native = run_native_in(native_dir.path(), command);
            INFO("guest: " << describe(guest));
            INFO("native: " << describe(native));
            REQUIRE(shell_status(guest) == 0);
            REQUIRE(shell_status(native) == 0);
            CHECK(guest_dir.empty());
            const auto g = minivmm::workloads::parse_result_line(guest.out);
            const auto n = minivmm::workloads::parse_result_line(native.out);
            REQUIRE(g);
            REQUIRE(n);
            CHECK(g->test == c.test);
            CHECK(g->events == n->events);
            CHECK(g->check == n->check);
            CHECK(g->check != 0);
        }
    }
}

// ---- what the loader refuses ------------------------------------------------

namespace {

// A copy of a test program (lp_hello.glibc unless `source` says) with
// `patch` applied to its bytes.
fs::path patched_copy(const TempDir& dir, const std::string& name,
                      const std::function<void(std::string&)>& patch,
                      const std::string& source = MINIVMM_LINUX_TEST_DIR "/lp_hello.glibc") {
    auto bytes = read_file(source);
    REQUIRE(bytes.size() > 4096);
    patch(bytes);
    const auto path = dir.path() / name;
    write_file(path, bytes);
    fs::permissions(path, fs::perms::owner_all);
    return path;
}

template <typename T>
T get(const std::string& bytes, std::size_t offset) {
    T v;
    REQUIRE(offset + sizeof v <= bytes.size());
    std::memcpy(&v, bytes.data() + offset, sizeof v);
    return v;
}

template <typename T>
void put(std::string& bytes, std::size_t offset, T v) {
    REQUIRE(offset + sizeof v <= bytes.size());
    std::memcpy(bytes.data() + offset, &v, sizeof v);
}

// Offsets of the PT_LOAD program headers (Elf64_Phdr, 56 bytes).
std::vector<std::size_t> loads(const std::string& bytes) {
    const auto phoff = get<std::uint64_t>(bytes, 32);
    const auto phnum = get<std::uint16_t>(bytes, 56);
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < phnum; ++i) {
        if (get<std::uint32_t>(bytes, phoff + i * 56) == 1) {
            at.push_back(phoff + i * 56);
        }
    }
    REQUIRE_FALSE(at.empty());
    return at;
}

// One line on stderr naming the problem, status 125 (a VMM error: README,
// "Exit statuses"), and the program never started.
void check_refused(const std::vector<std::string>& args, const std::string& needle) {
    const auto r = run_minivmm(args, 60s);
    INFO(describe(r));
    REQUIRE_FALSE(r.hung);
    CHECK(r.signal == 0);
    CHECK(r.status == 125);
    CHECK(line_count(r.err) == 1);
    CHECK_THAT(r.err, Contains(needle));
    CHECK(r.out.empty());
}

} // namespace

TEST_CASE("Linux programs: executables the loader refuses, each with one line",
          "[kvm][linux][refuse]") {
    TempDir dir;
    write_file(dir.path() / "script.sh", "#!/bin/sh\necho not an ELF\n");
    check_refused({"--linux", (dir.path() / "script.sh").string()}, "not an ELF");

    const auto whole = read_file(MINIVMM_LINUX_TEST_DIR "/lp_hello.glibc");
    write_file(dir.path() / "truncated", whole.substr(0, 200));
    check_refused({"--linux", (dir.path() / "truncated").string()}, "truncated");

    check_refused({"--linux", patched_copy(dir, "elf32", [](std::string& b) { b[4] = 1; })},
                  "32-bit");
    check_refused({"--linux", patched_copy(dir, "aarch64",
                                           [](std::string& b) { put<std::uint16_t>(b, 18, 183); })},
                  "x86-64");
    check_refused({"--linux", patched_copy(dir, "low",
                                           [](std::string& b) {
                                               const auto ph = loads(b).front();
                                               put<std::uint64_t>(b, ph + 16, 0x1000); // p_vaddr
                                           })},
                  "64 KiB");
    check_refused({"--mem", "64M", "--linux",
                   patched_copy(dir, "huge",
                                [](std::string& b) {
                                    // The last segment's bss: 1 GiB
                                    const auto ph = loads(b).back();
                                    put<std::uint64_t>(b, ph + 40, 1ull << 30); // p_memsz
                                })},
                  "RAM");
    check_refused({"--linux", (dir.path() / "missing").string()}, "missing");
    check_refused({"--linux", dir.path().string()}, "regular file");

    // A dynamically linked program whose interpreter is not there, or is
    // not a shared object: PT_INTERP's path changed in a copy, same length.
    const auto interp_to = [&](const std::string& name, const std::string& path) {
        return patched_copy(
            dir, name,
            [&](std::string& b) {
                const auto at = b.find("/lib64/ld-linux-x86-64.so.2");
                REQUIRE(at != std::string::npos);
                REQUIRE(path.size() == 27);
                b.replace(at, path.size(), path);
            },
            MINIVMM_LINUX_TEST_DIR "/lp_hello.glibc-dyn");
    };
    check_refused({"--linux", interp_to("no-interp", "/lib64/ld-linux-x86-64.so.9")},
                  "its interpreter /lib64/ld-linux-x86-64.so.9: cannot open");
    // An ET_EXEC (the static lp_hello) as the interpreter: a relative
    // path, the working directory's as Linux opens it (the rest NULs).
    fs::copy_file(MINIVMM_LINUX_TEST_DIR "/lp_hello.glibc", dir.path() / "ld-exec.so");
    const auto exec_interp = interp_to("exec-interp", "ld-exec.so" + std::string(17, '\0'));
    check_refused({"--workdir", dir.path().string(), "--linux", exec_interp.string()},
                  "ld-exec.so: e_type 2 is not ET_DYN: an interpreter must be a shared object");
}

TEST_CASE("dynamic: Debian's /bin/true runs and exits 0", "[kvm][linux][dynamic]") {
    const auto r = run_minivmm({"--linux", "/bin/true"}, 60s);
    INFO(describe(r));
    REQUIRE_FALSE(r.hung);
    CHECK(r.signal == 0);
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
}

// ---- Debian's sysbench 1.0.20, unmodified ------------------------------------

namespace {

constexpr const char* kSysbench = "/usr/bin/sysbench";

// `sysbench ARGS...` in the guest, in `dir`; its report on stdout.
ProcessResult sysbench_guest(const fs::path& dir, const std::vector<std::string>& args) {
    std::vector<std::string> a = {"--workdir", dir.string(), "--linux", kSysbench};
    a.insert(a.end(), args.begin(), args.end());
    return run_minivmm(a, 300s);
}

} // namespace

TEST_CASE("sysbench: the real program's five tests run in the guest with threads",
          "[kvm][linux][sysbench]") {
    if (::access(kSysbench, X_OK) != 0)
        minivmm::test::skip_test(std::string(kSysbench) + " is missing (apt-get install sysbench)");
    TempDir dir;
    // A fixed number of events: the report's count is exact whatever the speed.
    struct Case {
        std::vector<std::string> args;
        const char* line;
    };
    const Case cases[] = {
        {{"cpu", "--threads=2", "--events=200", "--time=0", "run"},
         "total number of events:              200"},
        {{"memory", "--threads=2", "--memory-total-size=64M", "--time=0", "run"},
         "total number of events:              65536"},
        {{"threads", "--threads=2", "--events=100", "--time=0", "run"},
         "total number of events:              100"},
        {{"mutex", "--threads=2", "--mutex-locks=2000", "--time=0", "run"},
         "total number of events:              2"},
    };
    for (const auto& c : cases) {
        INFO("sysbench " << c.args[0]);
        const auto r = sysbench_guest(dir.path(), c.args);
        INFO(describe(r));
        CHECK(shell_status(r) == 0);
        CHECK_THAT(r.out, Contains("sysbench 1.0.20") && Contains("Threads started!") &&
                              Contains(c.line) && Contains("Number of threads: 2"));
    }
    // fileio: prepare, a random read/write run with fsyncs, cleanup, all
    // in the working directory the guest may write.
    const std::vector<std::string> files = {"fileio", "--file-num=4", "--file-total-size=8M"};
    auto step = [&](std::vector<std::string> more) {
        auto args = files;
        args.insert(args.end(), more.begin(), more.end());
        return sysbench_guest(dir.path(), args);
    };
    auto prepare = step({"prepare"});
    INFO(describe(prepare));
    CHECK(shell_status(prepare) == 0);
    CHECK(fs::file_size(dir.path() / "test_file.0") == 2u << 20);
    auto run = step({"--file-test-mode=rndrw", "--events=500", "--time=0", "run"});
    INFO(describe(run));
    CHECK(shell_status(run) == 0);
    CHECK_THAT(run.out,
               Contains("fsyncs/s:") && Contains("total number of events:              500"));
    auto cleanup = step({"cleanup"});
    CHECK(shell_status(cleanup) == 0);
    CHECK(dir.empty());
}
