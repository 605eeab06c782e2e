#include "cli/run_options.hpp"

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "minivmm/seccomp.hpp"
#include "minivmm/version.hpp"

namespace minivmm::cli {

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    std::string suffix(end, text.data() + text.size());
    std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    // Accepted: "", "B", and K/M/G/T each optionally followed by "B" or "iB".
    unsigned shift = 0;
    if (!suffix.empty() && suffix != "B") {
        std::string_view rest = std::string_view(suffix).substr(1);
        if (!rest.empty() && rest != "B" && rest != "IB") return std::nullopt;
        switch (suffix[0]) {
        case 'K':
            shift = 10;
            break;
        case 'M':
            shift = 20;
            break;
        case 'G':
            shift = 30;
            break;
        case 'T':
            shift = 40;
            break;
        default:
            return std::nullopt;
        }
    }
    if (shift != 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
    return value << shift;
}

std::optional<std::vector<int>> parse_cpu_list(std::string_view text) {
    std::vector<int> cpus;
    auto number = [](std::string_view t) -> std::optional<int> {
        int v = 0;
        auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc() || end != t.data() + t.size() || t.empty() || v < 0 ||
            v >= CPU_SETSIZE)
            return std::nullopt;
        return v;
    };
    while (true) {
        auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        auto dash = item.find('-');
        auto first = number(item.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
        if (!first || !last || *last < *first) return std::nullopt;
        for (int cpu = *first; cpu <= *last; ++cpu)
            cpus.push_back(cpu);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return cpus;
}

std::variant<RunOptions, EarlyExit> parse_run_options(int argc, const char* const* argv) {
    // Everything after the first "--" is the guest's command line, verbatim;
    // everything after "--linux PROGRAM" is the program's argv, verbatim.
    std::vector<std::string> args;
    std::string cmdline;
    bool in_cmdline = false;
    std::optional<LinuxRunOptions> linux_program;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (!in_cmdline && (a == "--linux" || a.starts_with("--linux="))) {
            linux_program.emplace();
            if (a != "--linux") {
                linux_program->program = a.substr(8);
            } else if (i + 1 < argc) {
                linux_program->program = argv[++i];
            }
            if (linux_program->program.empty())
                return EarlyExit{kExitUsage, "--linux: needs the PROGRAM to run (see --help)"};
            for (++i; i < argc; ++i)
                linux_program->args.emplace_back(argv[i]);
            break;
        }
        if (!in_cmdline && a == "--") {
            in_cmdline = true;
        } else if (in_cmdline) {
            if (!cmdline.empty()) cmdline += ' ';
            cmdline += a;
        } else {
            args.emplace_back(a);
        }
    }
    std::reverse(args.begin(), args.end()); // CLI11 takes them back to front

    RunOptions opts;
    opts.cmdline = std::move(cmdline);
    std::string mem = "256M";
    std::optional<double> timeout;
    std::string level = "warn";

    CLI::App app{"Run a minivmm guest image (guest ABI v1) on /dev/kvm.", "minivmm-run"};
    app.set_version_flag("--version", fmt::format("minivmm-run {}", minivmm::version()));
    auto* image = app.add_option("image", opts.image, "guest image: flat binary or ELF64");
    if (!linux_program) image->required();
    std::vector<std::string> env, rw_dirs;
    std::string workdir, stack;
    app.add_option("--env", env,
                   "with --linux: KEY=VALUE in the program's environment (repeatable; nothing "
                   "is inherited)")
        ->allow_extra_args(false);
    app.add_option("--workdir", workdir,
                   "with --linux: the program's current directory, where it may write "
                   "(default: the current one)");
    app.add_option("--rw", rw_dirs,
                   "with --linux: another directory the program may write beneath (repeatable)")
        ->allow_extra_args(false);
    app.add_option("--stack", stack, "with --linux: the program's stack size (default 8M)");
    app.add_option("--vcpus", opts.vcpus,
                   "number of vCPUs (default 1); with --linux, the most threads the program may "
                   "have at once (default 16)");
    app.add_option("--mem", mem,
                   "guest RAM, e.g. 256M, 1G (K/M/G suffixes; default 256M, 1G with --linux)");
    app.add_option("--timeout", timeout, "stop the guest after SECONDS (exit status 124)");
    std::string lock = "global";
    app.add_option("--lock", lock,
                   "KVM slot-table lock policy: per-listener, global (default), rcu")
        ->check(CLI::IsMember({"per-listener", "global", "rcu"}));
    app.add_option("--disk", opts.disk,
                   "block device backed by FILE (must exist; size = file size, 512-byte sectors)");
    app.add_flag("--disk-readonly", opts.disk_readonly, "make the --disk read-only");
    std::string blk_io;
    app.add_option("--blk-io", blk_io,
                   "how --disk requests reach the VMM: hypercall, exit, ioeventfd, poll "
                   "(default poll)")
        ->check(CLI::IsMember({"hypercall", "exit", "ioeventfd", "poll"}));
    std::string blk_priority;
    app.add_option("--blk-priority", blk_priority,
                   "I/O threads of --blk-io=ioeventfd|poll: fifo (SCHED_FIFO, needs "
                   "CAP_SYS_NICE; warns without), normal, or auto (default: fifo when "
                   "permitted, quietly normal otherwise)")
        ->check(CLI::IsMember({"auto", "fifo", "normal"}));
    std::string blk_threads;
    app.add_option("--blk-threads", blk_threads,
                   "I/O threads of --blk-io=ioeventfd|poll: shared (one for all queues, the "
                   "default) or per-queue (one per vCPU)")
        ->check(CLI::IsMember({"per-queue", "shared"}));
    std::optional<unsigned> poll_us;
    app.add_option("--blk-poll-us", poll_us,
                   "with --blk-io=poll: microseconds an I/O thread watches an idle ring "
                   "(default 200)")
        ->check(CLI::Range(1u, 1000000u));
    std::string blk_writeback;
    app.add_option("--blk-writeback", blk_writeback,
                   "--disk writes: lazy (leave them to the kernel's write-back; the default) or "
                   "eager (start the disk write of each request at once, so a flush has little "
                   "left to write)")
        ->check(CLI::IsMember({"eager", "lazy"}));
    std::string backing = "anonymous";
    app.add_option("--ram-backing", backing,
                   "guest RAM: anonymous (default), memfd, hugetlbfs (2 MiB pages; grows the "
                   "pool as root, else falls back to anonymous)")
        ->check(CLI::IsMember({"anonymous", "memfd", "hugetlbfs"}));
    bool thp_on = false, thp_off = false;
    auto* thp_flag = app.add_flag("--thp", thp_on,
                                  "transparent huge pages for anonymous/memfd guest RAM (madvise "
                                  "MADV_HUGEPAGE; the default except on hugetlbfs)");
    app.add_flag("--no-thp", thp_off, "4 KiB pages for anonymous/memfd guest RAM")
        ->excludes(thp_flag);
    app.add_flag("--prefault", opts.ram.prefault, "fault in all guest RAM before the guest starts");
    app.add_flag("--mlock", opts.ram.lock, "lock guest RAM in host memory (mlock)");
    std::string pin;
    app.add_option("--pin", pin,
                   "run vCPU i on host CPU i of CPULIST (e.g. 0,1 or 0-1; round robin)");
    app.add_option("--dirty-ring", opts.dirty_ring_entries,
                   "dirty logging through per-vCPU dirty rings of N entries (a power of two; "
                   "default: the bitmap)")
        ->check(CLI::Range(1u, 1u << 20));
    app.add_option("--api-sock", opts.api_socket,
                   "serve the JSON control protocol on a UNIX socket at PATH (mode 0600; "
                   "README \"Control socket\"; minivmm-ctl is its client)");
    app.add_flag("--no-seccomp", opts.no_seccomp,
                 "run without the seccomp allowlists (for debugging; README \"Sandbox\")");
    // Thrown by its callback, which CLI11 runs before it checks for the
    // image: --print-seccomp needs none.
    struct PrintSeccomp {
        ThreadRole role;
    };
    app.add_option_function<std::string>(
           "--print-seccomp",
           [](const std::string& role) {
               throw PrintSeccomp{role == "vcpu"      ? ThreadRole::vcpu
                                  : role == "io"      ? ThreadRole::io
                                  : role == "program" ? ThreadRole::program
                                                      : ThreadRole::vmm};
           },
           "print the seccomp allowlist of the ROLE threads (vcpu, io, vmm, program: a --linux "
           "program's vCPU), one system call per line, and exit")
        ->type_name("ROLE")
        ->check(CLI::IsMember({"vcpu", "io", "vmm", "program"}));
    app.add_flag("--stats", opts.stats, "print a minivmm-stats line of VM exits to stderr");
    app.add_option("--stats-json", opts.stats_json, "write the VM exit statistics to FILE as JSON");
    app.add_option("--log-level", level, "trace, debug, info, warn (default), error, off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.footer("Arguments after -- are passed to the guest as its command line.\n"
               "--linux PROGRAM [ARGS...] (last) runs an unmodified static x86-64 Linux\n"
               "executable instead, minivmm serving its system calls; its exit status is\n"
               "the program's (128 + N when signal N ended it).\n"
               "Exit status: the guest's exit code; 2 bad usage, 124 timeout, 125 VMM error,\n"
               "126 guest fault, 130/143 stopped by SIGINT/SIGTERM.");
    try {
        app.parse(args);
    } catch (const CLI::CallForHelp&) {
        return EarlyExit{0, app.help()};
    } catch (const CLI::CallForVersion&) {
        return EarlyExit{0, fmt::format("minivmm-run {}\n", minivmm::version())};
    } catch (const PrintSeccomp& print) {
        return EarlyExit{0, seccomp_listing(print.role)};
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        std::replace(what.begin(), what.end(), '\n', ' ');
        return EarlyExit{kExitUsage, fmt::format("{} (see --help)", what)};
    }
    if (opts.disk_readonly && opts.disk.empty())
        return EarlyExit{kExitUsage, "--disk-readonly: needs --disk FILE"};
    if (opts.disk.empty()) {
        if (!blk_io.empty()) return EarlyExit{kExitUsage, "--blk-io: needs --disk FILE"};
        if (!blk_priority.empty())
            return EarlyExit{kExitUsage, "--blk-priority: needs --disk FILE"};
        if (poll_us) return EarlyExit{kExitUsage, "--blk-poll-us: needs --disk FILE"};
        if (!blk_threads.empty()) return EarlyExit{kExitUsage, "--blk-threads: needs --disk FILE"};
        if (!blk_writeback.empty())
            return EarlyExit{kExitUsage, "--blk-writeback: needs --disk FILE"};
    }
    if (!blk_writeback.empty()) {
        if (opts.disk_readonly)
            return EarlyExit{kExitUsage, "--blk-writeback: a --disk-readonly disk has no writes"};
        opts.disk_io.eager_writeback = blk_writeback == "eager";
    }
    if (!blk_io.empty()) opts.disk_io.mode = *parse_block_io_mode(blk_io);
    if (!blk_priority.empty()) {
        if (opts.disk_io.mode != BlockIoMode::ioeventfd && opts.disk_io.mode != BlockIoMode::poll)
            return EarlyExit{kExitUsage,
                             "--blk-priority: only with --blk-io=ioeventfd or poll (I/O threads)"};
        opts.disk_io.priority = blk_priority == "fifo"     ? BlockIoOptions::Priority::fifo
                                : blk_priority == "normal" ? BlockIoOptions::Priority::normal
                                                           : BlockIoOptions::Priority::automatic;
    }
    if (!blk_threads.empty()) {
        if (opts.disk_io.mode != BlockIoMode::ioeventfd && opts.disk_io.mode != BlockIoMode::poll)
            return EarlyExit{kExitUsage,
                             "--blk-threads: only with --blk-io=ioeventfd or poll (I/O threads)"};
        opts.disk_io.shared_thread = blk_threads == "shared";
    }
    if (poll_us) {
        if (opts.disk_io.mode != BlockIoMode::poll)
            return EarlyExit{kExitUsage, "--blk-poll-us: only with --blk-io=poll"};
        opts.disk_io.poll_time = std::chrono::microseconds(*poll_us);
    }
    if (opts.vcpus == 0) return EarlyExit{kExitUsage, "--vcpus: must be at least 1"};
    auto size = parse_size(mem);
    if (!size || *size == 0)
        return EarlyExit{kExitUsage,
                         fmt::format("--mem: '{}' is not a size such as 256M or 1G", mem)};
    opts.mem_size = *size;
    if (timeout) {
        if (!std::isfinite(*timeout) || *timeout <= 0 || *timeout > 1e9)
            return EarlyExit{kExitUsage,
                             "--timeout: give a number of seconds above 0 and up to 1e9"};
        opts.timeout = std::chrono::nanoseconds(static_cast<std::int64_t>(*timeout * 1e9));
    }
    if (backing == "memfd")
        opts.ram.backing = RamBlockOptions::Backing::memfd;
    else if (backing == "hugetlbfs")
        opts.ram.backing = RamBlockOptions::Backing::hugetlbfs;
    if (thp_on && opts.ram.backing == RamBlockOptions::Backing::hugetlbfs)
        return EarlyExit{kExitUsage, "--thp: guest RAM on hugetlbfs has huge pages already"};
    // THP by default, except on hugetlbfs (its pages are huge already).
    opts.ram.transparent_huge_pages =
        thp_on || (!thp_off && opts.ram.backing != RamBlockOptions::Backing::hugetlbfs);
    if (!pin.empty() || app.count("--pin") != 0) {
        auto cpus = parse_cpu_list(pin);
        if (!cpus)
            return EarlyExit{kExitUsage,
                             fmt::format("--pin: '{}' is not a CPU list such as 0,1 or 0-3", pin)};
        cpu_set_t allowed;
        CPU_ZERO(&allowed);
        if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
            for (int cpu : *cpus)
                if (!CPU_ISSET(cpu, &allowed))
                    return EarlyExit{
                        kExitUsage,
                        fmt::format("--pin: host CPU {} is not available to this process", cpu)};
        opts.vcpu_cpus = std::move(*cpus);
    }
    if (app.count("--stats-json") != 0 && opts.stats_json.empty())
        return EarlyExit{kExitUsage, "--stats-json: needs a FILE name"};
    opts.log_level = spdlog::level::from_str(level);
    opts.lock_policy = *parse_lock_policy(lock);
    if (!linux_program) {
        for (const char* name : {"--env", "--workdir", "--rw", "--stack"})
            if (app.count(name) != 0)
                return EarlyExit{kExitUsage, fmt::format("{}: only with --linux PROGRAM", name)};
        return opts;
    }
    // What a Linux program's VM does not have: refused, never ignored.
    if (!opts.image.empty())
        return EarlyExit{kExitUsage, fmt::format("--linux: runs a program, not the guest image "
                                                 "'{}' (give one or the other)",
                                                 opts.image)};
    if (!opts.cmdline.empty() || in_cmdline)
        return EarlyExit{kExitUsage, "--linux: the program's arguments follow PROGRAM, not --"};
    for (const char* name : {"--lock", "--disk", "--ram-backing", "--thp", "--no-thp", "--prefault",
                             "--mlock", "--dirty-ring", "--api-sock", "--stats-json"})
        if (app.count(name) != 0)
            return EarlyExit{kExitUsage, fmt::format("{}: not available with --linux", name)};
    for (const auto& e : env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return EarlyExit{kExitUsage, fmt::format("--env: '{}' is not KEY=VALUE", e)};
    if (app.count("--mem") == 0) opts.mem_size = 1ull << 30; // a program's default: 1G
    if (opts.mem_size % (2ull << 20) != 0 || opts.mem_size < (32ull << 20))
        return EarlyExit{kExitUsage, "--mem: with --linux, a multiple of 2M and at least 32M"};
    // Each thread of the program is a vCPU: --vcpus bounds how many it may
    // have at once.
    if (app.count("--vcpus") != 0) linux_program->max_threads = opts.vcpus;
    linux_program->env = std::move(env);
    linux_program->workdir = std::move(workdir);
    linux_program->rw_dirs = std::move(rw_dirs);
    if (!stack.empty()) {
        auto bytes = parse_size(stack);
        if (!bytes || *bytes == 0 || *bytes % 4096 != 0)
            return EarlyExit{kExitUsage,
                             fmt::format("--stack: '{}' is not a size in whole 4K pages", stack)};
        linux_program->stack_size = *bytes;
    }
    opts.linux_program = std::move(linux_program);
    return opts;
}

} // namespace minivmm::cli
