#include "cli/run_options.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

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

std::variant<RunOptions, EarlyExit> parse_run_options(int argc, const char* const* argv) {
    // Everything after the first "--" is the guest's command line, verbatim.
    std::vector<std::string> args;
    std::string cmdline;
    bool in_cmdline = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
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
    app.add_option("image", opts.image, "guest image: flat binary or ELF64")->required();
    app.add_option("--vcpus", opts.vcpus, "number of vCPUs (default 1)");
    app.add_option("--mem", mem, "guest RAM, e.g. 256M, 1G (K/M/G suffixes; default 256M)");
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
    std::optional<unsigned> poll_us;
    app.add_option("--blk-poll-us", poll_us,
                   "with --blk-io=poll: microseconds an I/O thread watches an idle ring "
                   "(default 200)")
        ->check(CLI::Range(1u, 1000000u));
    app.add_option("--log-level", level, "trace, debug, info, warn (default), error, off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.footer("Arguments after -- are passed to the guest as its command line.\n"
               "Exit status: the guest's exit code; 2 bad usage, 124 timeout, 125 VMM error,\n"
               "126 guest fault, 130/143 stopped by SIGINT/SIGTERM.");
    try {
        app.parse(args);
    } catch (const CLI::CallForHelp&) {
        return EarlyExit{0, app.help()};
    } catch (const CLI::CallForVersion&) {
        return EarlyExit{0, fmt::format("minivmm-run {}\n", minivmm::version())};
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        std::replace(what.begin(), what.end(), '\n', ' ');
        return EarlyExit{kExitUsage, fmt::format("{} (see --help)", what)};
    }
    if (opts.disk_readonly && opts.disk.empty())
        return EarlyExit{kExitUsage, "--disk-readonly: needs --disk FILE"};
    if (!blk_io.empty() && opts.disk.empty())
        return EarlyExit{kExitUsage, "--blk-io: needs --disk FILE"};
    if (!blk_io.empty()) opts.disk_io.mode = *parse_block_io_mode(blk_io);
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
    opts.log_level = spdlog::level::from_str(level);
    opts.lock_policy = *parse_lock_policy(lock);
    return opts;
}

} // namespace minivmm::cli
