// minivmm-run: run one guest image and exit with its exit code.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>

#include <fmt/core.h>

#include "cli/run_options.hpp"
#include "cli/stats.hpp"
#include "minivmm/control_socket.hpp"
#include "minivmm/error.hpp"
#include "minivmm/linux_program.hpp"
#include "minivmm/log.hpp"
#include "minivmm/vm.hpp"

namespace {

int status_of(const minivmm::VmExit& exit) {
    using Kind = minivmm::VmExit::Kind;
    switch (exit.kind) {
    case Kind::guest_exit:
        return exit.code;
    case Kind::guest_fault:
        return minivmm::cli::kExitGuestFault;
    case Kind::timeout:
        return minivmm::cli::kExitTimeout;
    case Kind::signal:
        return 128 + exit.code;
    case Kind::vmm_error:
        return minivmm::cli::kExitVmmError;
    case Kind::quit:
        return 0;
    }
    return minivmm::cli::kExitVmmError;
}

// --linux: the program's exit status is ours; a fault or a signal it sent
// itself gives one line on stderr and 128 + the signal, as a shell shows it.
int run_linux_program(const minivmm::KvmSystem& kvm, const minivmm::cli::RunOptions& opts) {
    const auto& lp = *opts.linux_program;
    minivmm::LinuxProgramConfig config;
    config.path = lp.program;
    config.argv.push_back(lp.program);
    config.argv.insert(config.argv.end(), lp.args.begin(), lp.args.end());
    config.env = lp.env;
    config.workdir = lp.workdir;
    config.writable_dirs = lp.rw_dirs;
    config.mem_size = opts.mem_size;
    config.stack_size = lp.stack_size;
    config.max_threads = lp.max_threads;
    config.timeout = opts.timeout;
    config.seccomp = !opts.no_seccomp;
    config.vcpu_cpus = opts.vcpu_cpus;
    minivmm::LinuxProgram program(kvm, config);
    auto exit = program.run();
    std::fflush(stdout);
    if (!exit.message.empty())
        fmt::print(stderr, "minivmm-run: {}: {}\n", lp.program, exit.message);
    auto stats = program.stats();
    minivmm::logger().info("{}: status {}, {} system calls, {} translation flushes, {} exits",
                           lp.program, exit.shell_status(), stats.syscalls,
                           stats.translation_flushes, stats.exits.total());
    if (opts.stats)
        fmt::print(stderr, "{} syscalls={} flushes={}\n", minivmm::cli::stats_line(stats.exits),
                   stats.syscalls, stats.translation_flushes);
    return exit.shell_status();
}

} // namespace

int main(int argc, char** argv) {
    auto parsed = minivmm::cli::parse_run_options(argc, argv);
    if (auto* early = std::get_if<minivmm::cli::EarlyExit>(&parsed)) {
        if (early->status == 0)
            fmt::print("{}", early->text);
        else
            fmt::print(stderr, "minivmm-run: error: {}\n", early->text);
        return early->status;
    }
    const auto& opts = std::get<minivmm::cli::RunOptions>(parsed);

    // Logs go to stderr; stdout carries the guest's console and nothing else.
    auto& logger = minivmm::logger();
    logger.set_pattern("minivmm-run: [%l] %v");
    logger.set_level(opts.log_level);

    try {
        minivmm::KvmSystem kvm;
        if (opts.linux_program) return run_linux_program(kvm, opts);
        minivmm::VmConfig config;
        config.mem_size = opts.mem_size;
        config.vcpus = opts.vcpus;
        config.cmdline = opts.cmdline;
        config.timeout = opts.timeout;
        config.lock_policy = opts.lock_policy;
        config.disk_path = opts.disk;
        config.disk_readonly = opts.disk_readonly;
        config.disk_io = opts.disk_io;
        config.ram = opts.ram;
        config.vcpu_cpus = opts.vcpu_cpus;
        config.seccomp = !opts.no_seccomp;
        config.seccomp_event_loop = !opts.no_seccomp;
        config.dirty_ring_entries = opts.dirty_ring_entries;
        // Opened before the run so a bad path fails fast, not after the guest's work.
        std::ofstream stats_json;
        if (!opts.stats_json.empty()) {
            stats_json.open(opts.stats_json, std::ios::trunc);
            if (!stats_json)
                throw minivmm::ConfigError(fmt::format("cannot open --stats-json file '{}': {}",
                                                       opts.stats_json, std::strerror(errno)));
        }
        auto image = minivmm::load_image_for(opts.image, config);
        minivmm::Vm vm(kvm, config, image);
        std::optional<minivmm::ControlSocket> control;
        if (!opts.api_socket.empty()) control.emplace(vm, opts.api_socket);
        logger.info("{}: {} vCPU(s), {} MiB RAM, entry {:#x}, tsc {} kHz", opts.image, opts.vcpus,
                    opts.mem_size >> 20, vm.plan().entry(), vm.tsc_khz());
        auto exit = vm.run();
        std::fflush(stdout);
        if (!exit.message.empty()) fmt::print(stderr, "minivmm-run: {}\n", exit.message);
        logger.info("{}: {} (status {}), {} exits", opts.image, minivmm::to_string(exit.kind),
                    status_of(exit), vm.exit_counts().total());
        if (opts.stats) fmt::print(stderr, "{}\n", minivmm::cli::stats_line(vm.exit_counts()));
        if (stats_json.is_open()) {
            stats_json << minivmm::cli::stats_json(vm.exit_counts()) << '\n';
            stats_json.close();
            if (!stats_json)
                throw minivmm::ConfigError(
                    fmt::format("cannot write --stats-json file '{}'", opts.stats_json));
        }
        return status_of(exit);
    } catch (const minivmm::ConfigError& e) {
        // The library names what an error is about; we name our option for it.
        using Subject = minivmm::ConfigError::Subject;
        switch (e.subject()) {
        case Subject::disk:
            fmt::print(stderr, "minivmm-run: error: --disk {}\n", e.detail());
            break;
        case Subject::control_socket:
            fmt::print(stderr, "minivmm-run: error: --api-sock {}\n", e.detail());
            break;
        case Subject::general:
            fmt::print(stderr, "minivmm-run: error: {}\n", e.what());
            break;
        }
        return minivmm::cli::kExitVmmError;
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "minivmm-run: error: {}\n", e.what());
        return minivmm::cli::kExitVmmError;
    } catch (const std::exception& e) {
        fmt::print(stderr, "minivmm-run: internal error: {}\n", e.what());
        return minivmm::cli::kExitVmmError;
    }
}
