#include "vcpu/vcpu_loop.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include <fmt/format.h>

#include "minivmm/boot_layout.hpp"

namespace minivmm {

int vcpu_kick_signal() {
    // SIGUSR1 without SA_RESTART: delivering it makes KVM_RUN return EINTR
    // (QEMU's SIG_IPI does the same job).
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_handler = [](int) {};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, nullptr);
    });
    return SIGUSR1;
}

namespace {
// Only this vCPU's thread writes a counter; others read it while it runs.
void bump(std::uint64_t& counter) noexcept {
    std::atomic_ref<std::uint64_t> c(counter);
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
std::uint64_t read(const std::uint64_t& counter) noexcept {
    return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(counter))
        .load(std::memory_order_relaxed);
}
} // namespace

ExitCounts VcpuLoop::exit_counts() const noexcept {
    ExitCounts c;
    for (std::size_t i = 0; i < c.by_reason.size(); ++i)
        c.by_reason[i] = read(counts_.by_reason[i]);
    for (std::size_t i = 0; i < c.hypercalls.size(); ++i)
        c.hypercalls[i] = read(counts_.hypercalls[i]);
    c.other_io = read(counts_.other_io);
    return c;
}

void VcpuLoop::run() noexcept {
    try {
        kvm_run& run = vcpu_.run_state();
        while (!host_.stopping()) {
            host_.pause_point(vcpu_);
            const int rc = vcpu_.run();
            host_.left_guest(vcpu_);
            if (rc < 0) { // kicked or interrupted: re-check stop and pause
                host_.kicked(vcpu_);
                continue;
            }
            const auto t0 = std::chrono::steady_clock::now();
            const std::size_t reason =
                run.exit_reason < ExitCounts::kReasons ? run.exit_reason : ExitCounts::kReasons - 1;
            bump(counts_.by_reason[reason]);
            last_hypercall_ = ExitCounts::kHypercalls;
            ExitAction action = dispatch(run);
            const auto ns =
                static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::steady_clock::now() - t0)
                                               .count());
            latency_->by_reason[reason].record(ns);
            if (last_hypercall_ < ExitCounts::kHypercalls)
                latency_->hypercalls[last_hypercall_].record(ns);
            if (action == ExitAction::stop) return;
            if (action == ExitAction::park) {
                host_.park(vcpu_.id());
                return;
            }
        }
    } catch (const std::exception& e) {
        host_.request_stop({VmExit::Kind::vmm_error, 0, static_cast<int>(vcpu_.id()),
                            fmt::format("vcpu {}: {}", vcpu_.id(), e.what())});
    }
}

ExitAction VcpuLoop::fault(std::string message) {
    host_.request_stop(
        {VmExit::Kind::guest_fault, 0, static_cast<int>(vcpu_.id()), std::move(message)});
    return ExitAction::stop;
}

ExitAction VcpuLoop::port_io(kvm_run& run) {
    // String I/O (rep outs/ins) carries `count` items of `size` bytes each.
    auto* data = reinterpret_cast<std::byte*>(&run) + run.io.data_offset;
    const bool is_write = run.io.direction == KVM_EXIT_IO_OUT;
    // Unsigned wrap-around puts ports below the base out of range too.
    const unsigned hypercall = run.io.port - unsigned{layout::kHypercallPortBase};
    if (hypercall < ExitCounts::kHypercalls) {
        bump(counts_.hypercalls[hypercall]);
        last_hypercall_ = hypercall;
    } else {
        bump(counts_.other_io);
    }
    for (std::uint32_t i = 0; i < run.io.count; ++i) {
        auto hit = pio_.find(run.io.port, run.io.size);
        if (hit.device == nullptr)
            return fault(fmt::format("vcpu {}: unhandled port I/O: {} of {} byte(s) at port {:#x}",
                                     vcpu_.id(), is_write ? "out" : "in", run.io.size,
                                     run.io.port));
        IoAccess access{vcpu_.id(), vcpu_,    run.io.port,
                        hit.offset, is_write, {data + i * run.io.size, run.io.size}};
        if (auto action = hit.device->access(access); action != ExitAction::resume) return action;
    }
    return ExitAction::resume;
}

ExitAction VcpuLoop::mmio(kvm_run& run) {
    auto len = std::min<std::uint32_t>(run.mmio.len, sizeof run.mmio.data);
    const std::uint64_t gpa = run.mmio.phys_addr;
    // The device call runs inside the read section: a region removed
    // meanwhile stays alive until it returns.
    auto action = memory_.read_view([&](const FlatView& view) -> std::optional<ExitAction> {
        const MemorySection* sec = view.find(gpa);
        if (sec == nullptr || gpa + len > sec->end()) return std::nullopt;
        // A write to ROM (a KVM_MEM_READONLY slot) exits here: ROM ignores it.
        if (sec->kind == MemoryRegion::Kind::rom && run.mmio.is_write) return ExitAction::resume;
        if (sec->kind == MemoryRegion::Kind::mmio) {
            IoAccess access{vcpu_.id(),
                            vcpu_,
                            gpa,
                            sec->offset_in_region + (gpa - sec->gpa),
                            run.mmio.is_write != 0,
                            {reinterpret_cast<std::byte*>(run.mmio.data), len}};
            return sec->region->device()->access(access);
        }
        return std::nullopt;
    });
    if (action) return *action;
    return fault(fmt::format("vcpu {}: unhandled MMIO {} of {} byte(s) at guest-physical {:#x}",
                             vcpu_.id(), run.mmio.is_write ? "write" : "read", run.mmio.len, gpa));
}

ExitAction VcpuLoop::dispatch(kvm_run& run) {
    switch (run.exit_reason) {
    case KVM_EXIT_IO:
        return port_io(run);
    case KVM_EXIT_MMIO:
        return mmio(run);
    case KVM_EXIT_INTR:
        return ExitAction::resume;
    case KVM_EXIT_DIRTY_RING_FULL:
        host_.dirty_ring_full(vcpu_.id());
        return ExitAction::resume;
    case KVM_EXIT_SHUTDOWN:
        return fault(fmt::format("guest triple fault (KVM_EXIT_SHUTDOWN) on vcpu {}: rip={:#x}",
                                 vcpu_.id(), vcpu_.regs().rip));
    case KVM_EXIT_HLT:
        return fault(
            fmt::format("guest executed hlt on vcpu {}: rip={:#x}", vcpu_.id(), vcpu_.regs().rip));
    case KVM_EXIT_FAIL_ENTRY:
        return fault(fmt::format("VM entry failed on vcpu {}: hardware entry failure reason "
                                 "{:#x} on host cpu {}",
                                 vcpu_.id(), run.fail_entry.hardware_entry_failure_reason,
                                 run.fail_entry.cpu));
    case KVM_EXIT_INTERNAL_ERROR: {
        std::string data;
        for (std::uint32_t i = 0; i < std::min<std::uint32_t>(run.internal.ndata, 16); ++i)
            data += fmt::format(" {:#x}", run.internal.data[i]);
        return fault(fmt::format("KVM internal error on vcpu {}: suberror {}{}{}", vcpu_.id(),
                                 run.internal.suberror,
                                 run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                                     ? " (instruction emulation failed)"
                                     : "",
                                 data.empty() ? "" : ", data" + data));
    }
    case KVM_EXIT_SYSTEM_EVENT:
        return fault(
            fmt::format("guest system event {} on vcpu {}", run.system_event.type, vcpu_.id()));
    default:
        return fault(
            fmt::format("unexpected KVM exit reason {} on vcpu {}", run.exit_reason, vcpu_.id()));
    }
}

} // namespace minivmm
