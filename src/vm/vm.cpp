#include "minivmm/vm.hpp"

#include <sched.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <optional>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "minivmm/error.hpp"
#include "minivmm/log.hpp"
#include "minivmm/seccomp.hpp"
#include "vcpu/vcpu_set.hpp"
#include "vm/event_loop.hpp"
#include "vm/vm_devices.hpp"
#include "vm/vm_memory.hpp"

namespace minivmm {

namespace asio = boost::asio;

GuestImage load_image_for(const std::string& path, const VmConfig& config) {
    return GuestImage::load_file(path, BootPlan::max_image_size(config.mem_size, config.vcpus));
}

namespace {

// Pinning to a CPU outside our mask would fail in the thread; say so up front.
void check_vcpu_cpus(const std::vector<int>& cpus) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        throw SystemError("sched_getaffinity", errno);
    for (int cpu : cpus)
        if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
            throw ConfigError(fmt::format(
                "cannot pin a vCPU to host CPU {}: not in this process's CPU affinity mask", cpu));
}

} // namespace

// The VM composed of its parts: the memory part (VmMemory), the vCPU set
// (VcpuSet) and the device part (VmDevices), and the event loop that run()
// turns on the calling thread. Members are declared in dependency order:
// each part may refer to the ones above it.
struct Vm::Impl {
    Impl(const KvmSystem& kvm, VmConfig cfg, const GuestImage& image);
    VmExit run();
    // VcpuSet's stop hook (its mutex held): let io.run() return.
    void loop_stop() noexcept;

    VmConfig config;
    KvmVm vm;
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    asio::steady_timer timer{io};
    std::optional<asio::signal_set> signals;
    std::vector<LoopService*> services; // attach_service: started by run(), shut down at stop
    std::atomic<bool> ran{false};
    VmMemory memory;
    BootPlan plan;
    VcpuSet vcpus;
    VmDevices devices;
    std::uint32_t tsc_khz = 0;
};

namespace {

// What KVM and the host allow, checked before anything is allocated.
KvmVm create_vm(const KvmSystem& kvm, const VmConfig& config) {
    int max = kvm.max_vcpus();
    if (config.vcpus > static_cast<unsigned>(max))
        throw ConfigError(
            fmt::format("{} vCPUs requested; this KVM allows at most {}", config.vcpus, max));
    if (config.vcpus > static_cast<unsigned>(kvm.recommended_vcpus()))
        logger().warn("{} vCPUs on a host where KVM recommends at most {}", config.vcpus,
                      kvm.recommended_vcpus());
    if (!config.vcpu_cpus.empty()) check_vcpu_cpus(config.vcpu_cpus);
    return kvm.create_vm();
}

} // namespace

Vm::Impl::Impl(const KvmSystem& kvm, VmConfig cfg, const GuestImage& image)
    : config(std::move(cfg)), vm(create_vm(kvm, config)), memory(vm, config),
      plan(config.mem_size, config.vcpus, image),
      vcpus({config.vcpu_cpus, config.seccomp},
            {[this] { loop_stop(); }, [this] { memory.harvest_dirty_rings(); }, {}}),
      devices(memory.boot_ram(), vcpus, config, vm) {
    auto cpuid = kvm.supported_cpuid();
    std::vector<const KvmVcpu*> created;
    for (unsigned i = 0; i < config.vcpus; ++i) {
        KvmVcpu vcpu = vm.create_vcpu(i);
        // Per-vCPU initial APIC id, as a real BIOS would report it.
        auto entries = cpuid;
        for (auto& e : entries) {
            if (e.function == 1) e.ebx = (e.ebx & 0x00ffffff) | (i << 24);
            if (e.function == 0xb || e.function == 0x1f) e.edx = i;
        }
        vcpu.set_cpuid(entries);
        unsigned index = vcpus.add(std::move(vcpu), devices.port_bus(), memory.address_space());
        created.push_back(&vcpus.vcpu(index));
    }
    memory.attach_dirty_rings(created);
    tsc_khz = created.front()->tsc_khz();
    std::uint64_t cr3 = build_guest(memory.boot_ram(), plan, image, tsc_khz, config.cmdline);
    memory.enable_hotplug(cr3);
    devices.set_hotplug(&memory.hotplug());
    for (unsigned i = 0; i < config.vcpus; ++i) {
        created[i]->set_sregs(initial_sregs(created[i]->sregs(), i, cr3));
        created[i]->set_regs(initial_regs(plan, i));
    }
}

void Vm::Impl::loop_stop() noexcept {
    // Drop the guard and cancel the loop's own waits; the control socket
    // closes after the responses it is writing.
    asio::post(io, [this] {
        work.reset();
        timer.cancel();
        if (signals) signals->cancel();
        for (auto* service : services)
            service->shutdown();
    });
}

VmExit Vm::Impl::run() {
    if (ran.exchange(true)) throw ConfigError("Vm::run may be called only once");
    if (config.timeout) {
        timer.expires_after(*config.timeout);
        timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*config.timeout);
            vcpus.request_stop({VmExit::Kind::timeout, 0, -1,
                                fmt::format("guest still running after the {:.3f} s time limit",
                                            static_cast<double>(ms.count()) / 1000.0)});
        });
    }
    if (config.handle_signals) {
        signals.emplace(io, SIGINT, SIGTERM);
        signals->async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            vcpus.request_stop(
                {VmExit::Kind::signal, sig, -1,
                 fmt::format("stopped by {}", sig == SIGINT ? "SIGINT" : "SIGTERM")});
        });
    }
    for (auto* service : services)
        service->start();
    vcpus.start();
    if (config.seccomp_event_loop) {
        try {
            install_seccomp(ThreadRole::vmm);
        } catch (const std::exception& e) {
            vcpus.request_stop({VmExit::Kind::vmm_error, 0, -1, e.what()});
        }
    }
    io.run();
    vcpus.join();
    if (!vcpus.stopping()) // unreachable unless every thread died without a reason
        return {VmExit::Kind::vmm_error, 0, -1, "all vCPU threads ended without a stop reason"};
    return vcpus.result();
}

Vm::Vm(const KvmSystem& kvm, VmConfig config, const GuestImage& image)
    : impl_(std::make_unique<Impl>(kvm, std::move(config), image)) {}
Vm::~Vm() {
    if (impl_) {
        impl_->vcpus.join();
        // The disk's I/O threads ask the vCPU set whether it is stopping: end
        // them while it lives (the devices go first, in reverse order).
        impl_->devices.stop();
    }
}
VmExit Vm::run() {
    return impl_->run();
}
void Vm::request_stop(VmExit reason) noexcept {
    impl_->vcpus.request_stop(std::move(reason));
}
bool Vm::pause(std::chrono::milliseconds wait) {
    return impl_->vcpus.pause(wait);
}
void Vm::resume() noexcept {
    impl_->vcpus.resume();
}
bool Vm::paused() const noexcept {
    return impl_->vcpus.paused();
}
bool Vm::stopping() const noexcept {
    return impl_->vcpus.stopping();
}
void Vm::add_ram(std::uint64_t gpa, std::uint64_t size) {
    impl_->memory.hotplug().add(gpa, size);
}
void Vm::remove_ram(std::uint64_t gpa) {
    impl_->memory.hotplug().remove(gpa);
}
std::vector<HotplugRam> Vm::hotplug_ram() const {
    return impl_->memory.hotplug().list();
}
bool Vm::dirty_logging() const noexcept {
    return impl_->memory.dirty_logging();
}
std::uint32_t Vm::dirty_ring_entries() const noexcept {
    return impl_->memory.dirty_ring_entries();
}
struct VmLoopAccess {
    static Vm::Impl& impl(Vm& vm) noexcept { return *vm.impl_; }
};

boost::asio::io_context& event_loop(Vm& vm) noexcept {
    return VmLoopAccess::impl(vm).io;
}

void attach_service(Vm& vm, LoopService& service) {
    auto& impl = VmLoopAccess::impl(vm);
    if (impl.ran.load() && !impl.vcpus.stopping())
        throw ConfigError("a service must be attached before Vm::run starts");
    impl.services.push_back(&service);
}

void detach_service(Vm& vm, LoopService& service) noexcept {
    std::erase(VmLoopAccess::impl(vm).services, &service);
}

VmStats Vm::stats() const {
    const auto& impl = *impl_;
    VmStats s;
    s.exits = exit_counts();
    impl.vcpus.for_each_loop([&](const VcpuLoop& loop) {
        const auto& lat = loop.latency();
        for (std::size_t i = 0; i < s.exit_latency.size(); ++i)
            s.exit_latency[i] += lat.by_reason[i].snapshot();
        for (std::size_t i = 0; i < s.hypercall_latency.size(); ++i)
            s.hypercall_latency[i] += lat.hypercalls[i].snapshot();
    });
    s.slot_updates = impl.memory.slot_backend().set_slot_latency();
    s.lock_policy = impl.memory.slots().policy();
    s.lock = impl.memory.slots().lock_stats();
    s.lock_waits = impl.memory.slots().lock_waits();
    s.ram_adds = impl.memory.hotplug().add_latency().snapshot();
    s.ram_removes = impl.memory.hotplug().remove_latency().snapshot();
    if (const auto* disk = impl.devices.disk()) {
        auto d = disk->counters();
        s.has_disk = true;
        s.disk_reads = d.reads;
        s.disk_writes = d.writes;
        s.disk_flushes = d.flushes;
        s.disk_errors = d.errors;
        s.disk_requests = d.latency;
    }
    return s;
}
BootRam& Vm::boot_ram() noexcept {
    return impl_->memory.boot_ram();
}
IoBus& Vm::port_bus() noexcept {
    return impl_->devices.port_bus();
}
MemoryTopology& Vm::topology() noexcept {
    return impl_->memory.topology();
}
AddressSpace& Vm::address_space() noexcept {
    return impl_->memory.address_space();
}
MemoryRegion& Vm::root_region() noexcept {
    return impl_->memory.root();
}
MemoryRegion& Vm::ram_region() noexcept {
    return impl_->memory.ram();
}
KvmSlots& Vm::kvm_slots() noexcept {
    return impl_->memory.slots();
}
void Vm::dirty_log_start() {
    impl_->memory.dirty_log_start();
}
std::vector<std::uint64_t> Vm::dirty_log_sync() {
    return impl_->memory.dirty_log_sync();
}
void Vm::dirty_log_stop() {
    impl_->memory.dirty_log_stop();
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
    ExitCounts c = impl_->vcpus.exit_counts();
    if (const auto* disk = impl_->devices.disk()) {
        auto d = disk->counters();
        c.ioeventfd_signals = d.doorbell_signals;
        c.ring_requests = d.ring_requests;
    }
    return c;
}

} // namespace minivmm
