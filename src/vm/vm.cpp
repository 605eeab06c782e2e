#include "minivmm/vm.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "devices/hypercalls.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"
#include "minivmm/log.hpp"
#include "minivmm/version.hpp"
#include "vcpu/vcpu_loop.hpp"
#include "vcpu/vm_control.hpp"

namespace minivmm {

namespace asio = boost::asio;

const char* to_string(VmExit::Kind kind) noexcept {
    switch (kind) {
    case VmExit::Kind::guest_exit:
        return "guest exit";
    case VmExit::Kind::guest_fault:
        return "guest fault";
    case VmExit::Kind::timeout:
        return "timeout";
    case VmExit::Kind::signal:
        return "signal";
    case VmExit::Kind::vmm_error:
        return "vmm error";
    }
    return "?";
}

std::uint64_t ExitCounts::total() const noexcept {
    std::uint64_t n = 0;
    for (auto c : by_reason)
        n += c;
    return n;
}

GuestImage load_image_for(const std::string& path, const VmConfig& config) {
    return GuestImage::load_file(path, BootPlan::max_image_size(config.mem_size, config.vcpus));
}

struct Vm::Impl final : VmControl {
    Impl(const KvmSystem& kvm, VmConfig cfg, const GuestImage& image);

    bool stopping() const noexcept override { return stopping_.load(std::memory_order_acquire); }
    void request_stop(VmExit reason) noexcept override;
    void park(unsigned vcpu) noexcept override;
    VmExit run();
    void stop_locked(VmExit reason) noexcept; // with stop_mutex_ held

    VmConfig config;
    KvmVm vm;
    GuestMemory memory;
    BootPlan plan;
    std::vector<KvmVcpu> vcpus;
    std::uint32_t tsc_khz = 0;
    std::shared_ptr<ConsoleSink> console;
    IoBus port_bus{"port"};
    IoBus mmio_bus{"MMIO"};
    HypercallDevice hypercalls;
    ExceptionReportDevice exception_report;
    std::vector<VcpuLoop> loops;
    std::vector<std::thread> threads;
    std::vector<pthread_t> thread_handles; // for kicks; guarded by stop_mutex_
    bool ran = false;

    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    asio::steady_timer timer{io};
    std::optional<asio::signal_set> signals;

    std::atomic<bool> stopping_{false};
    std::atomic<unsigned> parked_{0};
    std::mutex stop_mutex_; // orders the winning reason against the kicks
    VmExit result_;
};

Vm::Impl::Impl(const KvmSystem& kvm, VmConfig cfg, const GuestImage& image)
    : config(std::move(cfg)), vm(kvm.create_vm()),
      memory((BootPlan::validate(config.mem_size, config.vcpus), config.mem_size)),
      plan(config.mem_size, config.vcpus, image),
      console(config.console ? config.console : std::make_shared<FdConsole>(1)),
      hypercalls(memory, *console, *this), exception_report(memory, *this) {
    int max = kvm.max_vcpus();
    if (config.vcpus > static_cast<unsigned>(max))
        throw ConfigError(
            fmt::format("{} vCPUs requested; this KVM allows at most {}", config.vcpus, max));
    if (config.vcpus > static_cast<unsigned>(kvm.recommended_vcpus()))
        logger().warn("{} vCPUs on a host where KVM recommends at most {}", config.vcpus,
                      kvm.recommended_vcpus());

    // One memory slot covers all guest RAM for now (api.rst 4.35).
    kvm_userspace_memory_region region{};
    region.slot = 0;
    region.guest_phys_addr = 0;
    region.memory_size = memory.size();
    region.userspace_addr = reinterpret_cast<std::uint64_t>(memory.host_base());
    vm.set_user_memory_region(region);

    auto cpuid = kvm.supported_cpuid();
    for (unsigned i = 0; i < config.vcpus; ++i) {
        vcpus.push_back(vm.create_vcpu(i));
        // Per-vCPU initial APIC id, as a real BIOS would report it.
        auto entries = cpuid;
        for (auto& e : entries) {
            if (e.function == 1) e.ebx = (e.ebx & 0x00ffffff) | (i << 24);
            if (e.function == 0xb || e.function == 0x1f) e.edx = i;
        }
        vcpus.back().set_cpuid(entries);
    }
    tsc_khz = vcpus.front().tsc_khz();
    std::uint64_t cr3 = build_guest(memory, plan, image, tsc_khz, config.cmdline);
    for (unsigned i = 0; i < config.vcpus; ++i) {
        vcpus[i].set_sregs(initial_sregs(vcpus[i].sregs(), i, cr3));
        vcpus[i].set_regs(initial_regs(plan, i));
    }

    port_bus.add(layout::kHypercallPortBase, layout::kHypercallPortCount, hypercalls);
    port_bus.add(layout::kExceptionPort, 1, exception_report);
    loops.reserve(vcpus.size());
    for (auto& v : vcpus)
        loops.emplace_back(v, port_bus, mmio_bus, *this);
}

void Vm::Impl::request_stop(VmExit reason) noexcept {
    std::lock_guard lock(stop_mutex_);
    stop_locked(std::move(reason));
}

void Vm::Impl::stop_locked(VmExit reason) noexcept {
    if (stopping_.load(std::memory_order_relaxed)) return; // the first reason wins
    result_ = std::move(reason);
    stopping_.store(true, std::memory_order_release);
    // immediate_exit catches a vCPU about to enter KVM_RUN, the signal one
    // already inside it (api.rst, kvm_run.immediate_exit).
    for (auto& v : vcpus)
        v.run_state().immediate_exit = 1;
    int sig = vcpu_kick_signal();
    for (pthread_t t : thread_handles)
        pthread_kill(t, sig);
    stopping_.notify_all();
    // Let io.run() return: drop the guard and cancel the loop's own waits.
    asio::post(io, [this] {
        work.reset();
        timer.cancel();
        if (signals) signals->cancel();
    });
}

void Vm::Impl::park(unsigned vcpu) noexcept {
    unsigned n = parked_.fetch_add(1) + 1;
    if (n == vcpus.size()) request_stop({VmExit::Kind::guest_exit, 0, static_cast<int>(vcpu), {}});
    stopping_.wait(false);
}

VmExit Vm::Impl::run() {
    if (ran) throw ConfigError("Vm::run may be called only once");
    ran = true;
    if (config.timeout) {
        timer.expires_after(*config.timeout);
        timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*config.timeout);
            request_stop({VmExit::Kind::timeout, 0, -1,
                          fmt::format("guest still running after the {:.3f} s time limit",
                                      static_cast<double>(ms.count()) / 1000.0)});
        });
    }
    if (config.handle_signals) {
        signals.emplace(io, SIGINT, SIGTERM);
        signals->async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            request_stop({VmExit::Kind::signal, sig, -1,
                          fmt::format("stopped by {}", sig == SIGINT ? "SIGINT" : "SIGTERM")});
        });
    }

    vcpu_kick_signal();
    {
        // Thread creation and kicks share the stop mutex, so a stop that
        // races with start-up still reaches every thread.
        std::lock_guard lock(stop_mutex_);
        for (auto& loop : loops) {
            if (stopping_.load()) break;
            try {
                threads.emplace_back([&loop] {
                    // Termination signals are the event loop's business, the kick is ours.
                    sigset_t set;
                    sigemptyset(&set);
                    sigaddset(&set, SIGINT);
                    sigaddset(&set, SIGTERM);
                    pthread_sigmask(SIG_BLOCK, &set, nullptr);
                    sigemptyset(&set);
                    sigaddset(&set, vcpu_kick_signal());
                    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
                    loop.run();
                });
            } catch (const std::system_error& e) {
                stop_locked({VmExit::Kind::vmm_error, 0, -1,
                             fmt::format("cannot start a vCPU thread: {}", e.what())});
                break;
            }
            thread_handles.push_back(threads.back().native_handle());
        }
    }
    io.run();
    for (auto& t : threads)
        t.join();
    if (!stopping()) // unreachable unless every thread died without a reason
        return {VmExit::Kind::vmm_error, 0, -1, "all vCPU threads ended without a stop reason"};
    return result_;
}

Vm::Vm(const KvmSystem& kvm, VmConfig config, const GuestImage& image)
    : impl_(std::make_unique<Impl>(kvm, std::move(config), image)) {}
Vm::~Vm() {
    if (impl_) {
        for (auto& t : impl_->threads)
            if (t.joinable()) t.join();
    }
}
VmExit Vm::run() {
    return impl_->run();
}
void Vm::request_stop(VmExit reason) noexcept {
    impl_->request_stop(std::move(reason));
}
GuestMemory& Vm::memory() noexcept {
    return impl_->memory;
}
IoBus& Vm::port_bus() noexcept {
    return impl_->port_bus;
}
IoBus& Vm::mmio_bus() noexcept {
    return impl_->mmio_bus;
}
const BootPlan& Vm::plan() const noexcept {
    return impl_->plan;
}
const KvmVm& Vm::kvm_vm() const noexcept {
    return impl_->vm;
}
std::uint32_t Vm::tsc_khz() const noexcept {
    return impl_->tsc_khz;
}
ExitCounts Vm::exit_counts() const noexcept {
    ExitCounts c;
    for (const auto& loop : impl_->loops)
        for (std::size_t i = 0; i < c.by_reason.size(); ++i)
            c.by_reason[i] += loop.exit_counts()[i];
    return c;
}

const char* version() noexcept {
    return MINIVMM_VERSION;
}

} // namespace minivmm
