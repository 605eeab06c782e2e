#include "bench/overhead_bench.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>

#include <fmt/core.h>

#include "bench/overhead_report.hpp"
#include "bench/process.hpp"
#include "fileio_native.hpp"
#include "minivmm/unique_fd.hpp"
#include "native_workloads.hpp"

namespace minivmm::bench {

namespace {

// The end of a run of either mode: the table on stdout, then the JSON and
// HTML files asked for.
int finish_report(OverheadReport& report, const OverheadOptions& o, bool tty,
                  std::chrono::steady_clock::time_point t0) {
    if (tty) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "overhead: done\n");
    report.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("{}", render_table(report));
    if (!o.json_path.empty()) write_file(o.json_path, report_json(report).dump(2) + "\n");
    if (!o.html_path.empty()) write_file(o.html_path, render_html(report));
    return 0;
}

using workloads::Result;

constexpr std::uint64_t kMutexLocks = 50000, kThreadYields = 100;

// One row of the benchmark: a workload with its options and what its
// result's check= must be.
struct Variant {
    std::string name;
    std::string test;      // sb-result test=, guest image sb_<test>
    std::string options;   // sysbench options shared by both sides, no --time
    unsigned time_s;       // 0: run to the event limit
    std::string guest_mem; // minivmm-run --mem, empty for the default
    std::string note;
    // Throws when `r` (a run of `side`) fails its check; `ref` is the first
    // native run of this variant.
    std::function<void(const Result& r, const Result& ref)> check;
    bool sysbench = false; // also run the real sysbench with these options
    // Rounds = --repeat x this: the memory write/read runs end after 2G, in
    // ~0.2 s, and two threads sharing one block make them noisy.
    unsigned round_factor = 1;
};

// The host's transparent-huge-page mode ("madvise", ...), the selected one
// in /sys/kernel/mm/transparent_hugepage/enabled; "unknown" without it.
std::string host_thp_mode() {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string text;
    std::getline(f, text);
    auto open = text.find('['), close = text.find(']');
    if (open == std::string::npos || close == std::string::npos || close < open) return "unknown";
    return text.substr(open + 1, close - open - 1);
}

[[noreturn]] void check_failed(const std::string& what, const Result& r) {
    throw std::runtime_error(
        fmt::format("CHECK FAILED: {}: {}", what, workloads::format_result(r)));
}

std::vector<Variant> variants(const OverheadOptions& o) {
    const unsigned t = o.full ? 10 : o.time_s;
    std::vector<Variant> out;
    for (const auto& name : o.tests) {
        if (name == "cpu") {
            out.push_back({"cpu", "cpu", "--cpu-max-prime=20000", t, "",
                           "every event counts 2261 primes below 20000",
                           [](const Result& r, const Result&) {
                               if (r.check != 2261) check_failed("cpu prime count != 2261", r);
                           },
                           true});
        } else if (name == "memory" || name.rfind("memory-", 0) == 0) {
            // "memory" is all three rows; memory-write/-read/-touch one of them.
            auto want = [&](const char* row) { return name == "memory" || name == row; };
            const std::string base = "--memory-block-size=8K --memory-total-size=2G";
            for (const char* oper : {"write", "read"}) {
                if (!want(std::string("memory-").append(oper).c_str())) continue;
                bool write = std::string(oper) == "write";
                out.push_back(
                    {fmt::format("memory-{}", oper), "memory",
                     fmt::format("{} --memory-oper={} --memory-scope=global", base, oper), t, "",
                     write ? "the written block's word sum matches native's"
                           : "per-block read checksum (check / events) matches native's",
                     [write](const Result& r, const Result& ref) {
                         if (r.check == 0 || r.check == std::numeric_limits<std::uint64_t>::max())
                             check_failed("memory checksum invalid", r);
                         if (write) {
                             if (r.check != ref.check)
                                 check_failed(
                                     fmt::format("memory write checksum != native {}", ref.check),
                                     r);
                         } else if (r.check % r.events != 0 ||
                                    r.check / r.events != ref.check / ref.events) {
                             check_failed(fmt::format("memory read checksum per block != native {}",
                                                      ref.check / ref.events),
                                          r);
                         }
                     },
                     true, 3});
            }
            const std::uint64_t region = o.memory_region, pages = (region + 4095) / 4096;
            if (want("memory-touch"))
                out.push_back(
                    {"memory-touch", "memory",
                     fmt::format(
                         "--memory-oper=touch --memory-block-size=8K --memory-total-size={}",
                         region),
                     0, fmt::format("{}M", (region >> 20) + 512),
                     fmt::format("touches all {} pages of a fresh {} MiB region once (first touch "
                                 "included, no time limit); guest RAM on transparent huge pages "
                                 "(minivmm-run's default), native memory plain anonymous as "
                                 "sysbench's (host THP mode: {})",
                                 pages, region >> 20, host_thp_mode()),
                     [pages](const Result& r, const Result&) {
                         if (r.check != pages)
                             check_failed(fmt::format("touched pages != {}", pages), r);
                     }});
        } else if (name == "mutex") {
            out.push_back(
                {"mutex", "mutex",
                 fmt::format("--mutex-num=4096 --mutex-locks={} --mutex-loops=10000", kMutexLocks),
                 t, "", "lock counters sum to events * 50000", [](const Result& r, const Result&) {
                     if (r.check != r.events * kMutexLocks)
                         check_failed("mutex counters != events * mutex-locks", r);
                 }});
        } else if (name == "threads") {
            auto check = [](const Result& r, const Result&) {
                if (r.check != r.events * kThreadYields)
                    check_failed("threads counters != events * thread-yields", r);
            };
            const std::string base =
                fmt::format("--thread-yields={} --thread-locks=4", kThreadYields);
            out.push_back({"threads", "threads", base + " --thread-yield=pause", t, "",
                           "lock counters sum to events * 100; yield = 16 x pause on both sides "
                           "(the same code)",
                           check});
            out.push_back({"threads-sched", "threads", base + " --thread-yield=sched", t, "",
                           "lock counters sum to events * 100; yield = sched_yield() natively "
                           "(as sysbench), the yield hypercall in the guest (the vCPU thread "
                           "calls sched_yield(): one exit per yield)",
                           check, true});
        } else if (name == "fileio") {
            const std::uint64_t size = o.file_total_size;
            out.push_back(
                {"fileio", "fileio",
                 fmt::format("--file-num=128 --file-total-size={} --file-test-mode=rndrw "
                             "--file-block-size=16K --file-rw-ratio=1.5 --file-fsync-freq=100 "
                             "--file-fsync-end=on",
                             size),
                 t, "",
                 fmt::format("128 files, {} MiB in all, prepared (written fully once) before the "
                             "timed run and removed after it; natively files in {}, in the guest "
                             "extents of a block device backed by a host file there; every read "
                             "is verified against the last write, no I/O errors",
                             size >> 20, o.file_dir),
                 [](const Result& r, const Result&) {
                     if (r.check == 0) check_failed("fileio: no verified reads", r);
                 }});
        } else {
            throw std::invalid_argument("overhead: unknown test " + name);
        }
    }
    return out;
}

OverheadSample to_sample(const Result& r, bool first) {
    OverheadSample s;
    s.events = r.events;
    s.time_ns = r.time_ns;
    s.check = r.check;
    s.lat_avg_ns = static_cast<double>(r.lat_avg_ns);
    s.lat_p95_ns = static_cast<double>(r.lat_p95_ns);
    s.lat_min_ns = static_cast<double>(r.lat_min_ns);
    s.lat_max_ns = static_cast<double>(r.lat_max_ns);
    s.lat_sum_ns = static_cast<double>(r.lat_sum_ns);
    s.fairness_events_avg = r.fairness_events_avg;
    s.fairness_events_stddev = r.fairness_events_stddev;
    s.fairness_time_avg_ns = static_cast<double>(r.fairness_time_avg_ns);
    s.fairness_time_stddev_ns = static_cast<double>(r.fairness_time_stddev_ns);
    s.first = first;
    return s;
}

// Every run, either side: the right test, --threads threads, some events.
void basic_check(const Variant& v, const Result& r, unsigned threads) {
    if (r.test != v.test) check_failed(v.name + ": wrong test", r);
    if (r.threads != threads) check_failed(fmt::format("{}: threads != {}", v.name, threads), r);
    if (r.events == 0 || r.time_ns == 0) check_failed(v.name + ": no events", r);
}

// The fileio test's working directory: a fresh folder under --file-dir,
// removed (with anything left in it) at the end. tmpfs or ramfs is refused:
// the test is about fsync reaching a disk.
class FileioDir {
  public:
    explicit FileioDir(const std::string& parent) {
        struct statfs fs {};
        if (::statfs(parent.c_str(), &fs) != 0)
            throw std::runtime_error(
                fmt::format("fileio: --file-dir {}: {}", parent, std::strerror(errno)));
        if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)
            throw std::runtime_error(fmt::format(
                "fileio: --file-dir {} is on tmpfs/ramfs; choose a folder on a disk filesystem "
                "(the test measures fsync)",
                parent));
        std::string tmpl = parent + "/minivmm-fileio.XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr)
            throw std::runtime_error(fmt::format("fileio: cannot create a folder in {}: {}", parent,
                                                 std::strerror(errno)));
        path_ = tmpl;
    }
    FileioDir(const FileioDir&) = delete;
    FileioDir& operator=(const FileioDir&) = delete;
    ~FileioDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }
    // A fresh, sparse disk image of `bytes` for one guest run (the guest's
    // prepare phase writes it fully, as the native prepare writes its files).
    std::string fresh_disk(std::uint64_t bytes) const {
        std::string img = path_ + "/disk.img";
        UniqueFd fd(::open(img.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
            throw std::runtime_error(
                fmt::format("fileio: cannot create {}: {}", img, std::strerror(errno)));
        return img;
    }
    void remove_disk() const { ::unlink((path_ + "/disk.img").c_str()); }

  private:
    std::string path_;
};

// The "sb-fileio reads=.. writes=.. fsyncs=.. verify_failures=.. io_errors=.."
// line of either side; throws unless it is there and reports no failure.
void check_fileio_stats(const std::string& out) {
    if (out.find("sb-fileio ") == std::string::npos)
        throw std::runtime_error("fileio: no sb-fileio line in: " + out);
    auto line = out.substr(out.find("sb-fileio "));
    double failures = parse_number(line, "verify_failures=", "verify_failures=%lf");
    double errors = parse_number(line, " io_errors=", " io_errors=%lf");
    if (failures != 0 || errors != 0)
        throw std::runtime_error(fmt::format("CHECK FAILED: fileio: {}", out));
}

// The sysbench binary to compare with: `name` itself when it has a slash,
// else its first match on PATH; empty when there is none.
std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos)
        return ::access(name.c_str(), X_OK) == 0 ? name : std::string{};
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        auto end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string cand = dirs.substr(start, end - start) + "/" + name;
        if (end > start && ::access(cand.c_str(), X_OK) == 0) return cand;
        start = end + 1;
    }
    return {};
}

std::vector<std::string> split_words(const std::string& text) {
    std::vector<std::string> out;
    std::string word;
    for (char c : text + ' ') {
        if (c != ' ') {
            word += c;
        } else if (!word.empty()) {
            out.push_back(word);
            word.clear();
        }
    }
    return out;
}

// One overwritten line on a terminal; a line per test in a log.
void show_progress(bool tty, const std::string& name, unsigned round, unsigned rounds,
                   const std::string& side) {
    if (tty) {
        fmt::print(stderr, "\r\033[Koverhead: {} round {}/{}: {}", name, round + 1, rounds, side);
    } else if (round == 0 && side == "native") {
        fmt::print(stderr, "overhead: {} ({} rounds)\n", name, rounds);
    }
    std::fflush(stderr);
}

// --verbose: a run's report as that side printed it, under a header that
// carries the emulated mark for the whole report.
void show_run_report(const OverheadOptions& o, bool emulated, const std::string& name,
                     unsigned round, unsigned rounds, const std::string& side,
                     const std::string& text) {
    if (!o.verbose) return;
    fmt::print("=== {}{} round {}/{}: {} ===\n{}", emulated ? "[emulated] " : "", name, round + 1,
               rounds, side, text);
    if (!text.empty() && text.back() != '\n') fmt::print("\n");
    std::fflush(stdout);
}

// "sysbench 1.0.20" of `binary --version`.
std::string program_version(const std::string& binary) {
    auto version = run_checked({binary, "--version"}).out;
    std::string name = version.substr(0, version.find_first_of("\n("));
    while (!name.empty() && name.back() == ' ')
        name.pop_back();
    return name;
}

std::string join_words(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words)
        out += (out.empty() ? "" : " ") + w;
    return out;
}

// --program=sysbench: one test's sysbench arguments before the command word
// (prepare, run, cleanup), the same on both sides: sysbench's defaults but
// for the thread count, the time bound, and fileio's size and mode (which
// sysbench requires), then the --program-option extras, which win.
std::vector<std::string> program_args(const OverheadOptions& o, const std::string& test,
                                      unsigned threads, unsigned time_s) {
    std::vector<std::string> a{test, fmt::format("--threads={}", threads)};
    // mutex runs one event per thread to its end; a time bound could only
    // cut off a thread that started late.
    if (test != "mutex") a.push_back(fmt::format("--time={}", time_s));
    if (test == "fileio") {
        a.push_back(fmt::format("--file-total-size={}", o.file_total_size));
        a.push_back("--file-test-mode=rndrw");
    }
    for (const auto& p : o.program_options)
        if (p.starts_with(test + ":")) a.push_back(p.substr(test.size() + 1));
    return a;
}

// The real program natively and under minivmm-run --linux (o.program).
int run_program_overhead(const OverheadOptions& o) {
    auto t0 = std::chrono::steady_clock::now();
    const std::string sysbench = find_program(o.sysbench);
    if (sysbench.empty())
        throw std::runtime_error(fmt::format(
            "--program=sysbench: '{}' not found (Debian: apt-get install sysbench)", o.sysbench));
    OverheadReport report;
    const unsigned time_s = o.full ? 10 : o.time_s; // sysbench's own default with --full
    report.repeat = o.repeat;
    report.time_s = time_s;
    report.full = o.full;
    report.host = host_info();
    report.kvm_flavor = to_string(o.kvm_flavor);
    report.program = program_version(sysbench);
    report.thread_counts = o.thread_counts;
    std::optional<FileioDir> fileio_dir;
    if (std::find(o.tests.begin(), o.tests.end(), "fileio") != o.tests.end())
        fileio_dir.emplace(o.file_dir);
    const bool tty = ::isatty(2) != 0;
    for (unsigned threads : o.thread_counts) {
        for (const auto& test : o.tests) {
            const bool fileio = test == "fileio";
            TestSeries ts;
            ts.test = test;
            ts.threads = threads;
            ts.name = fmt::format("{}, {} thread{}", test, threads, threads == 1 ? "" : "s");
            ts.metric = test == "mutex" ? Metric::time : Metric::rate;
            const auto args = program_args(o, test, threads, time_s);
            ts.options = join_words(args) + " run";
            // The guest: a vCPU per worker thread and one for the main thread.
            std::vector<std::string> guest{o.run_path, "--vcpus", std::to_string(threads + 1)};
            if (fileio) guest.insert(guest.end(), {"--workdir", fileio_dir->path()});
            guest.insert(guest.end(), {"--linux", sysbench});
            guest.insert(guest.end(), args.begin(), args.end());
            guest.push_back("run");
            std::vector<std::string> native{sysbench};
            native.insert(native.end(), args.begin(), args.end());
            native.push_back("run");
            const std::string cwd = fileio ? fileio_dir->path() : std::string{};
            ts.note = fmt::format("the same arguments natively and under minivmm-run --vcpus {}{} "
                                  "--linux {}; each report must say {} thread{} and count "
                                  "events",
                                  threads + 1, fileio ? " --workdir DIR" : "", sysbench, threads,
                                  threads == 1 ? "" : "s");
            if (test == "mutex")
                ts.note += fmt::format(" (mutex: {} event{}, one per thread; the figure is "
                                       "sysbench's total time)",
                                       threads, threads == 1 ? "" : "s");
            if (fileio)
                ts.note += fmt::format("; the files ({} MiB) are prepared once natively before "
                                       "the rounds (untimed) in a fresh folder under {}, both "
                                       "sides run on them, cleanup after",
                                       o.file_total_size >> 20, o.file_dir);
            ts.guests.push_back({kLinuxGuest, {}});
            if (fileio) {
                auto prep = native;
                prep.back() = "prepare";
                run_checked(prep, cwd);
            }
            // Every run: sysbench's own report, with the thread count asked
            // for and some events (mutex: one per thread).
            auto sample = [&](const std::string& side, const std::string& out, bool first) {
                auto r = workloads::parse_sysbench_report(out, test, threads);
                if (!r ||
                    out.find(fmt::format("Number of threads: {}\n", threads)) == std::string::npos)
                    throw std::runtime_error(
                        fmt::format("{} {}: no sysbench report for {} threads:\n{}", ts.name, side,
                                    threads, out));
                if (r->events == 0 || (test == "mutex" && r->events != threads))
                    throw std::runtime_error(fmt::format("CHECK FAILED: {} {}: {} events:\n{}",
                                                         ts.name, side, r->events, out));
                return to_sample(*r, first);
            };
            for (unsigned round = 0; round < o.repeat; ++round) {
                // Swap which side goes first every round, so that drift on a
                // shared machine favours neither.
                const bool native_first = round % 2 == 0;
                auto native_side = [&] {
                    show_progress(tty, ts.name, round, o.repeat, "native");
                    auto out = run_checked(native, cwd).out;
                    show_run_report(o, report.emulated(), ts.name, round, o.repeat, "native", out);
                    ts.native.push_back(sample("native", out, native_first));
                };
                auto guest_side = [&] {
                    const std::string side = std::string("guest ") + kLinuxGuest;
                    show_progress(tty, ts.name, round, o.repeat, side);
                    auto out = run_checked(guest).out;
                    show_run_report(o, report.emulated(), ts.name, round, o.repeat, side, out);
                    ts.guests.front().samples.push_back(sample(side, out, !native_first));
                };
                if (native_first) {
                    native_side();
                    guest_side();
                } else {
                    guest_side();
                    native_side();
                }
            }
            if (fileio) {
                auto clean = native;
                clean.back() = "cleanup";
                run_checked(clean, cwd);
            }
            report.tests.push_back(std::move(ts));
        }
    }
    return finish_report(report, o, tty, t0);
}

} // namespace

std::string host_info() {
    std::string out;
    utsname u{};
    if (::uname(&u) == 0) out = fmt::format("Linux {} {}", u.release, u.machine);
    std::ifstream cpu("/proc/cpuinfo");
    std::string line;
    unsigned n = 0;
    std::string model;
    while (std::getline(cpu, line)) {
        if (line.rfind("model name", 0) == 0) {
            ++n;
            if (auto c = line.find(": "); c != std::string::npos) model = line.substr(c + 2);
        }
    }
    if (n) out += fmt::format(", {} x {}", n, model);
    return out;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    if (!f) throw std::runtime_error("cannot write " + path);
    fmt::print(stderr, "wrote {}\n", path);
}

int run_overhead(const OverheadOptions& o) {
    if (!o.program.empty()) return run_program_overhead(o);
    auto t0 = std::chrono::steady_clock::now();
    OverheadReport report;
    report.repeat = o.repeat;
    report.time_s = o.full ? 10 : o.time_s;
    report.full = o.full;
    report.threads = o.threads;
    report.host = host_info();
    report.kvm_flavor = to_string(o.kvm_flavor);
    const auto all = variants(o);
    std::string sysbench, sysbench_name;
    if (o.sysbench != "none" &&
        std::any_of(all.begin(), all.end(), [](const Variant& v) { return v.sysbench; })) {
        sysbench = find_program(o.sysbench);
        if (sysbench.empty()) {
            report.reference_note =
                fmt::format("'{}' not found: no sysbench column (Debian: apt-get install sysbench)",
                            o.sysbench);
        } else {
            sysbench_name = program_version(sysbench);
        }
    }
    std::optional<FileioDir> fileio_dir;
    if (std::any_of(all.begin(), all.end(), [](const Variant& v) { return v.test == "fileio"; }))
        fileio_dir.emplace(o.file_dir);
    const bool tty = ::isatty(2) != 0;
    const std::string threads_opt = fmt::format("--threads={}", o.threads);
    for (const auto& v : all) {
        TestSeries ts;
        ts.name = v.name;
        ts.options = fmt::format("{} {} --events=0 --time={}", v.options, threads_opt, v.time_s);
        ts.note = v.note;
        // Guest columns: one per lock policy, then one per knob (the first
        // policy plus the knob's minivmm-run flags). A knob of --blk-* flags
        // only applies where there is a disk.
        struct GuestConfig {
            std::vector<std::string> args;
        };
        std::vector<GuestConfig> configs;
        for (const auto& p : o.policies) {
            ts.guests.push_back({p, {}});
            configs.push_back({{"--lock=" + p}});
        }
        for (const auto& knob : o.knobs) {
            auto flags = split_words(knob);
            bool disk_only = std::any_of(flags.begin(), flags.end(), [](const std::string& f) {
                return f.rfind("--blk-", 0) == 0;
            });
            if (disk_only && v.test != "fileio") continue;
            ts.guests.push_back({o.policies.front() + " " + knob, {}});
            flags.insert(flags.begin(), "--lock=" + o.policies.front());
            configs.push_back({std::move(flags)});
        }
        const bool reference = v.sysbench && !sysbench.empty();
        if (reference) ts.reference_name = sysbench_name;
        const auto guest_args = split_words(ts.options);
        std::optional<Result> ref;
        const unsigned rounds = o.repeat * v.round_factor;
        for (unsigned round = 0; round < rounds; ++round) {
            // Swap which side goes first every round, and rotate the policy
            // order, so drift on a shared machine favours no side.
            const bool native_first = round % 2 == 0;
            auto progress = [&](const std::string& side) {
                show_progress(tty, v.name, round, rounds, side);
            };
            auto show_run = [&](const std::string& side, const std::string& text) {
                show_run_report(o, report.emulated(), v.name, round, rounds, side, text);
            };
            auto native_side = [&] {
                progress("native");
                Result r;
                if (v.test == "fileio") {
                    auto run =
                        workloads::run_fileio_native(fileio_dir->path(), ts.options, o.threads);
                    auto parsed = workloads::parse_result_line(run.output);
                    if (run.status != 0 || !parsed)
                        throw std::runtime_error(fmt::format(
                            "CHECK FAILED: fileio native status {}: {}", run.status, run.output));
                    check_fileio_stats(run.output);
                    r = *parsed;
                    show_run("native", run.output);
                } else {
                    r = workloads::run_native(*workloads::parse_test(v.test), ts.options,
                                              o.threads);
                    show_run("native",
                             workloads::format_report(r, ts.options) + workloads::format_result(r));
                }
                basic_check(v, r, o.threads);
                if (!ref) ref = r;
                v.check(r, *ref);
                ts.native.push_back(to_sample(r, native_first));
            };
            // sysbench itself, right after the native run and with the same
            // options (its own clock and event loop).
            auto reference_side = [&] {
                progress(sysbench_name);
                std::vector<std::string> argv{sysbench, v.test};
                for (const auto& a : guest_args) // ours, not sysbench's: it has one yield
                    if (a.rfind("--thread-yield=", 0) != 0 && a.rfind("--yield-pauses=", 0) != 0)
                        argv.push_back(a);
                argv.push_back("run");
                auto out = run_checked(argv).out;
                show_run(sysbench_name, out);
                auto r = workloads::parse_sysbench_report(out, v.test, o.threads);
                if (!r)
                    throw std::runtime_error(
                        fmt::format("{}: cannot read sysbench's report:\n{}", v.name, out));
                ts.reference.push_back(to_sample(*r, false));
            };
            auto guest_side = [&](std::size_t pi, bool first) {
                progress("guest " + ts.guests[pi].policy);
                std::vector<std::string> argv{o.run_path, "--vcpus", std::to_string(o.threads)};
                argv.insert(argv.end(), configs[pi].args.begin(), configs[pi].args.end());
                if (!v.guest_mem.empty()) argv.insert(argv.end(), {"--mem", v.guest_mem});
                if (v.test == "fileio") {
                    argv.insert(argv.end(), {"--disk", fileio_dir->fresh_disk(o.file_total_size)});
                }
                argv.push_back(fmt::format("{}/sb_{}.bin", o.guest_dir, v.test));
                argv.push_back("--");
                argv.insert(argv.end(), guest_args.begin(), guest_args.end());
                auto pr = run_checked(argv);
                show_run("guest " + ts.guests[pi].policy, pr.out);
                if (v.test == "fileio") {
                    fileio_dir->remove_disk(); // cleanup, as natively
                    check_fileio_stats(pr.out);
                }
                auto r = workloads::parse_result_line(pr.out);
                if (!r)
                    throw std::runtime_error(
                        fmt::format("{}: no sb-result line from the guest:\n{}", v.name, pr.out));
                basic_check(v, *r, o.threads);
                v.check(*r, *ref); // round 0 runs native first, so ref is set
                ts.guests[pi].samples.push_back(to_sample(*r, first));
            };
            auto guests = [&](bool first) {
                for (std::size_t k = 0; k < configs.size(); ++k)
                    guest_side((k + round) % configs.size(), first && k == 0);
            };
            if (native_first) {
                native_side();
                if (reference) reference_side();
                guests(false);
            } else {
                guests(true);
                native_side();
                if (reference) reference_side();
            }
        }
        report.tests.push_back(std::move(ts));
    }
    return finish_report(report, o, tty, t0);
}

} // namespace minivmm::bench
