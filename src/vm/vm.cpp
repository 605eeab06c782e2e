#include "minivmm/vm.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "devices/block_device.hpp"
#include "devices/hypercalls.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/dirty_ring.hpp"
#include "minivmm/error.hpp"
#include "minivmm/log.hpp"
#include "minivmm/seccomp.hpp"
#include "vcpu/vcpu_host.hpp"
#include "vcpu/vcpu_loop.hpp"
#include "vm/event_loop.hpp"
#include "vm/ram_hotplug.hpp"

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

struct Vm::Impl final : VcpuHost {
    Impl(const KvmSystem& kvm, VmConfig cfg, const GuestImage& image);

    bool stopping() const noexcept override { return stopping_.load(std::memory_order_acquire); }
    void request_stop(VmExit reason) noexcept override;
    void park(unsigned vcpu) noexcept override;
    void dirty_ring_full(unsigned vcpu) override;
    void pause_point(const KvmVcpu& vcpu) noexcept override;
    void kicked(const KvmVcpu& vcpu) noexcept override;
    // Takes back pause()'s kick (immediate_exit) unless a stop or a pause
    // holds it; true when a pause still does.
    bool release_kick(const KvmVcpu& vcpu) noexcept;
    bool pause(std::chrono::milliseconds wait);
    void resume() noexcept;
    VmExit run();
    void enable_dirty_ring(const KvmSystem& kvm);
    std::vector<std::uint64_t> collect_dirty();
    void stop_locked(VmExit reason) noexcept; // with stop_mutex_ held
    // Gets every vCPU out of KVM_RUN (stop, pause); with stop_mutex_ held.
    void kick_all_locked() noexcept;

    VmConfig config;
    KvmVm vm;
    GuestMemory memory;
    BootPlan plan;
    // Guest-physical space: root container with the RAM region at 0; KVM
    // slots follow it through the KVM listener.
    MemoryTopology topology;
    std::shared_ptr<MemoryRegion> root;
    std::shared_ptr<MemoryRegion> ram;
    AddressSpace* address_space = nullptr;
    KvmSlotBackend slot_backend;
    KvmMemory kvm_memory;
    std::vector<DirtyRing> rings;
    std::vector<KvmVcpu> vcpus;
    std::uint32_t tsc_khz = 0;
    std::shared_ptr<ConsoleSink> console;
    IoBus port_bus{"port"};
    HypercallDevice hypercalls;
    ExceptionReportDevice exception_report;
    std::unique_ptr<BlockDevice> disk;                 // with config.disk_path
    std::unique_ptr<BlockHypercallRouter> disk_router; // hypercall ports, with a disk
    std::vector<VcpuLoop> loops;
    std::vector<std::thread> threads;
    std::vector<pthread_t> thread_handles; // for kicks; guarded by stop_mutex_
    std::atomic<bool> ran{false};          // read by pause() from other threads
    std::unique_ptr<RamHotplug> hotplug;
    std::atomic<bool> dirty_logging{false};

    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    asio::steady_timer timer{io};
    std::optional<asio::signal_set> signals;
    std::vector<LoopService*> services; // attach_service: started by run(), shut down at stop

    // Pause: vCPU threads wait in pause_point while pause_requested.
    std::mutex pause_mutex;
    std::condition_variable pause_cv;
    std::atomic<bool> pause_requested{false};
    unsigned held = 0; // vCPU threads waiting in pause_point; guarded by pause_mutex

    std::atomic<bool> stopping_{false};
    std::atomic<unsigned> parked_{0};
    std::mutex stop_mutex_; // orders the winning reason against the kicks
    VmExit result_;
};

Vm::Impl::Impl(const KvmSystem& kvm, VmConfig cfg, const GuestImage& image)
    : config(std::move(cfg)), vm(kvm.create_vm()),
      memory((BootPlan::validate(config.mem_size, config.vcpus),
              std::make_shared<RamBlock>("ram", config.mem_size, config.ram))),
      plan(config.mem_size, config.vcpus, image), slot_backend(vm),
      kvm_memory(slot_backend, {config.lock_policy, 0, 4096}),
      console(config.console ? config.console : std::make_shared<FdConsole>(1)),
      hypercalls(memory, *console, *this), exception_report(memory, *this) {
    int max = kvm.max_vcpus();
    if (config.vcpus > static_cast<unsigned>(max))
        throw ConfigError(
            fmt::format("{} vCPUs requested; this KVM allows at most {}", config.vcpus, max));
    if (config.vcpus > static_cast<unsigned>(kvm.recommended_vcpus()))
        logger().warn("{} vCPUs on a host where KVM recommends at most {}", config.vcpus,
                      kvm.recommended_vcpus());

    if (!config.vcpu_cpus.empty()) check_vcpu_cpus(config.vcpu_cpus);
    if (config.dirty_ring_entries != 0) enable_dirty_ring(kvm);

    // Guest RAM is a region of the system address space; the KVM listener
    // turns its sections into memory slots (api.rst 4.35).
    root = MemoryRegion::container("system", 1ull << 52);
    address_space = &topology.add_address_space("memory", root);
    ram = MemoryRegion::ram("ram", memory.block(), 0, memory.size());
    topology.add_subregion(*root, 0, ram);
    topology.add_listener(*address_space, kvm_memory.listener(0));
    memory.track_visibility(*address_space, *ram);

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
    if (config.dirty_ring_entries != 0) {
        std::vector<DirtyRing*> ptrs;
        rings.reserve(vcpus.size());
        for (auto& v : vcpus)
            ptrs.push_back(&rings.emplace_back(v, config.dirty_ring_entries));
        kvm_memory.use_dirty_rings(std::move(ptrs));
    }
    tsc_khz = vcpus.front().tsc_khz();
    std::uint64_t cr3 = build_guest(memory, plan, image, tsc_khz, config.cmdline);
    hotplug = std::make_unique<RamHotplug>(memory, cr3, topology, *root, *address_space, config.ram,
                                           dirty_logging);
    hypercalls.set_hotplug(hotplug.get());
    for (unsigned i = 0; i < config.vcpus; ++i) {
        vcpus[i].set_sregs(initial_sregs(vcpus[i].sregs(), i, cr3));
        vcpus[i].set_regs(initial_regs(plan, i));
    }

    if (config.disk_path.empty()) {
        port_bus.add(layout::kHypercallPortBase, layout::kHypercallPortCount, hypercalls);
    } else {
        // The disk serves hypercalls 17 and 18; the router sends it those.
        // One queue per vCPU; rings' doorbells become ioeventfds on this VM.
        disk = std::make_unique<BlockDevice>(memory, *this, config.disk_path, config.disk_readonly,
                                             config.disk_io, config.vcpus, &vm);
        disk->set_seccomp(config.seccomp);
        disk_router = std::make_unique<BlockHypercallRouter>(hypercalls, *disk);
        port_bus.add(layout::kHypercallPortBase, layout::kHypercallPortCount, *disk_router);
    }
    port_bus.add(layout::kExceptionPort, 1, exception_report);
    loops.reserve(vcpus.size());
    for (auto& v : vcpus)
        loops.emplace_back(v, port_bus, *address_space, *this);
}

void Vm::Impl::enable_dirty_ring(const KvmSystem& kvm) {
    // api.rst 7.26: enabled on the VM, in bytes, before any vCPU exists.
    // Prefer the variant with acquire/release ordering where KVM has it.
    const auto entries = config.dirty_ring_entries;
    if ((entries & (entries - 1)) != 0)
        throw ConfigError(fmt::format("dirty ring size {} is not a power of two", entries));
    std::uint32_t cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    int max_bytes = vm.check_extension(cap);
    if (max_bytes <= 0) {
        cap = KVM_CAP_DIRTY_LOG_RING;
        max_bytes = vm.check_extension(cap);
    }
    if (max_bytes <= 0) throw ConfigError("this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)");
    std::uint64_t bytes = std::uint64_t{entries} * sizeof(kvm_dirty_gfn);
    if (bytes < 4096 || bytes > static_cast<std::uint64_t>(max_bytes))
        throw ConfigError(
            fmt::format("dirty ring of {} entries is outside what KVM takes: {} to "
                        "{} entries",
                        entries, 4096 / sizeof(kvm_dirty_gfn),
                        static_cast<std::uint64_t>(max_bytes) / sizeof(kvm_dirty_gfn)));
    (void)kvm;
    vm.enable_cap(cap, bytes);
}

void Vm::Impl::dirty_ring_full(unsigned) {
    kvm_memory.harvest_dirty_rings();
}

std::vector<std::uint64_t> Vm::Impl::collect_dirty() {
    // Pull KVM's log into the blocks' bitmaps, then map dirty block pages
    // back to guest addresses through the flat view (a page shown twice
    // through aliases is reported at both addresses). Under the topology
    // lock: the view's sections point at RAM blocks that a concurrent
    // remove_ram would free.
    MemoryTopology::Transaction tx(topology);
    if (config.dirty_ring_entries != 0)
        kvm_memory.harvest_dirty_rings();
    else
        topology.log_sync();
    auto view = address_space->view();
    std::map<RamBlock*, std::vector<std::uint64_t>> taken;
    std::vector<std::uint64_t> gpas;
    for (const auto& sec : view->sections()) {
        if (!sec.log_dirty || sec.block == nullptr) continue;
        auto [it, fresh] = taken.try_emplace(sec.block);
        if (fresh) it->second = sec.block->dirty().take();
        std::uint64_t first = sec.block_offset / 4096, last = (sec.block_offset + sec.size) / 4096;
        for (std::uint64_t page : it->second)
            if (page >= first && page < last) gpas.push_back(sec.gpa + (page - first) * 4096);
    }
    std::sort(gpas.begin(), gpas.end());
    // Re-arm tracking of exactly what we just reported (manual protect), one
    // clear per run of contiguous pages: a clear drops the dirty bit of every
    // page it names, so it must name no page that was not reported.
    if (config.dirty_ring_entries == 0)
        for (std::size_t i = 0; i < gpas.size();) {
            std::size_t j = i + 1;
            while (j < gpas.size() && gpas[j] == gpas[j - 1] + 4096)
                ++j;
            topology.log_clear(*address_space, gpas[i], (j - i) * 4096);
            i = j;
        }
    return gpas;
}

void Vm::Impl::request_stop(VmExit reason) noexcept {
    std::lock_guard lock(stop_mutex_);
    stop_locked(std::move(reason));
}

void Vm::Impl::kick_all_locked() noexcept {
    // immediate_exit catches a vCPU about to enter KVM_RUN, the signal one
    // already inside it (api.rst, kvm_run.immediate_exit).
    for (auto& v : vcpus)
        v.run_state().immediate_exit = 1;
    int sig = vcpu_kick_signal();
    for (pthread_t t : thread_handles)
        pthread_kill(t, sig);
}

void Vm::Impl::stop_locked(VmExit reason) noexcept {
    if (stopping_.load(std::memory_order_relaxed)) return; // the first reason wins
    result_ = std::move(reason);
    stopping_.store(true, std::memory_order_release);
    kick_all_locked();
    stopping_.notify_all();
    {
        std::lock_guard pause_lock(pause_mutex); // wake paused vCPUs so they see the stop
        pause_cv.notify_all();
    }
    // Let io.run() return: drop the guard and cancel the loop's own waits;
    // the control socket closes after the responses it is writing.
    asio::post(io, [this] {
        work.reset();
        timer.cancel();
        if (signals) signals->cancel();
        for (auto* service : services)
            service->shutdown();
    });
}

void Vm::Impl::park(unsigned vcpu) noexcept {
    unsigned n = parked_.fetch_add(1) + 1;
    if (n == vcpus.size()) request_stop({VmExit::Kind::guest_exit, 0, static_cast<int>(vcpu), {}});
    {
        std::lock_guard lock(pause_mutex); // a parked vCPU counts as held for pause()
        pause_cv.notify_all();
    }
    stopping_.wait(false);
}

void Vm::Impl::pause_point(const KvmVcpu& vcpu) noexcept {
    while (pause_requested.load(std::memory_order_acquire)) {
        {
            std::unique_lock lock(pause_mutex);
            ++held;
            pause_cv.notify_all();
            pause_cv.wait(lock, [&] { return !pause_requested.load() || stopping(); });
            --held;
        }
        if (!release_kick(vcpu)) return;
    }
}

bool Vm::Impl::release_kick(const KvmVcpu& vcpu) noexcept {
    // pause() set immediate_exit to kick us. Clear it only if no stop and no
    // new pause holds it (both set it under stop_mutex_): clearing a newer
    // kick would let this vCPU run on unpaused.
    std::lock_guard lock(stop_mutex_);
    if (stopping()) return false;
    if (pause_requested.load()) return true;
    vcpu.run_state().immediate_exit = 0;
    return false;
}

void Vm::Impl::kicked(const KvmVcpu& vcpu) noexcept {
    // A pause withdrawn before this vCPU reached pause_point (it timed out,
    // or came before run) leaves its kick set, and pause_point takes it back
    // only while paused. Only on EINTR: not a hot path.
    (void)release_kick(vcpu);
}

bool Vm::Impl::pause(std::chrono::milliseconds wait) {
    std::size_t started = 0;
    {
        std::lock_guard lock(stop_mutex_);
        if (stopping()) return false;
        pause_requested.store(true, std::memory_order_release);
        kick_all_locked();
        started = thread_handles.size();
    }
    if (!ran) return true; // the vCPUs will start held
    std::unique_lock lock(pause_mutex);
    return pause_cv.wait_for(lock, wait,
                             [&] {
                                 return stopping() || !pause_requested.load() ||
                                        held + parked_.load() >= started;
                             }) &&
           !stopping() && pause_requested.load();
}

void Vm::Impl::resume() noexcept {
    std::lock_guard lock(pause_mutex);
    pause_requested.store(false, std::memory_order_release);
    pause_cv.notify_all();
}

VmExit Vm::Impl::run() {
    if (ran.exchange(true)) throw ConfigError("Vm::run may be called only once");
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
    for (auto* service : services)
        service->start();
    {
        // Thread creation and kicks share the stop mutex, so a stop that
        // races with start-up still reaches every thread.
        std::lock_guard lock(stop_mutex_);
        for (std::size_t i = 0; i < loops.size(); ++i) {
            if (stopping_.load()) break;
            try {
                threads.emplace_back([this, i, &loop = loops[i]] {
                    // "vcpuN" in top -H, perf and /proc/PID/task/*/comm.
                    pthread_setname_np(pthread_self(), fmt::format("vcpu{}", i).c_str());
                    if (!config.vcpu_cpus.empty()) {
                        int cpu = config.vcpu_cpus[i % config.vcpu_cpus.size()];
                        cpu_set_t set;
                        CPU_ZERO(&set);
                        CPU_SET(cpu, &set);
                        if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set)) {
                            request_stop({VmExit::Kind::vmm_error, 0, static_cast<int>(i),
                                          fmt::format("cannot pin vcpu {} to host CPU {}: {}", i,
                                                      cpu, std::strerror(rc))});
                            return;
                        }
                    }
                    // Termination signals are the event loop's business, the kick is ours.
                    sigset_t set;
                    sigemptyset(&set);
                    sigaddset(&set, SIGINT);
                    sigaddset(&set, SIGTERM);
                    pthread_sigmask(SIG_BLOCK, &set, nullptr);
                    sigemptyset(&set);
                    sigaddset(&set, vcpu_kick_signal());
                    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
                    if (config.seccomp) {
                        try {
                            install_seccomp(ThreadRole::vcpu);
                        } catch (const std::exception& e) {
                            request_stop({VmExit::Kind::vmm_error, 0, static_cast<int>(i),
                                          fmt::format("vcpu {}: {}", i, e.what())});
                            return;
                        }
                    }
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
    if (config.seccomp_event_loop) {
        try {
            install_seccomp(ThreadRole::vmm);
        } catch (const std::exception& e) {
            request_stop({VmExit::Kind::vmm_error, 0, -1, e.what()});
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
        // The disk's I/O threads ask this VM whether it is stopping: end them
        // while every member they reach is alive (Impl's members go in
        // reverse order, and `disk` comes before the stop state).
        if (impl_->disk) impl_->disk->stop();
    }
}
VmExit Vm::run() {
    return impl_->run();
}
void Vm::request_stop(VmExit reason) noexcept {
    impl_->request_stop(std::move(reason));
}
bool Vm::pause(std::chrono::milliseconds wait) {
    return impl_->pause(wait);
}
void Vm::resume() noexcept {
    impl_->resume();
}
bool Vm::paused() const noexcept {
    return impl_->pause_requested.load();
}
bool Vm::stopping() const noexcept {
    return impl_->stopping();
}
void Vm::add_ram(std::uint64_t gpa, std::uint64_t size) {
    impl_->hotplug->add(gpa, size);
}
void Vm::remove_ram(std::uint64_t gpa) {
    impl_->hotplug->remove(gpa);
}
std::vector<HotplugRam> Vm::hotplug_ram() const {
    return impl_->hotplug->list();
}
bool Vm::dirty_logging() const noexcept {
    return impl_->dirty_logging.load();
}
std::uint32_t Vm::dirty_ring_entries() const noexcept {
    return impl_->config.dirty_ring_entries;
}
struct VmLoopAccess {
    static Vm::Impl& impl(Vm& vm) noexcept { return *vm.impl_; }
};

boost::asio::io_context& event_loop(Vm& vm) noexcept {
    return VmLoopAccess::impl(vm).io;
}

void attach_service(Vm& vm, LoopService& service) {
    auto& impl = VmLoopAccess::impl(vm);
    if (impl.ran.load() && !impl.stopping())
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
    for (const auto& loop : impl.loops) {
        const auto& lat = loop.latency();
        for (std::size_t i = 0; i < s.exit_latency.size(); ++i)
            s.exit_latency[i] += lat.by_reason[i].snapshot();
        for (std::size_t i = 0; i < s.hypercall_latency.size(); ++i)
            s.hypercall_latency[i] += lat.hypercalls[i].snapshot();
    }
    s.slot_updates = impl.slot_backend.set_slot_latency();
    s.lock_policy = impl.kvm_memory.policy();
    s.lock = impl.kvm_memory.lock_stats();
    s.lock_waits = impl.kvm_memory.lock_waits();
    s.ram_adds = impl.hotplug->add_latency().snapshot();
    s.ram_removes = impl.hotplug->remove_latency().snapshot();
    if (impl.disk) {
        auto d = impl.disk->counters();
        s.has_disk = true;
        s.disk_reads = d.reads;
        s.disk_writes = d.writes;
        s.disk_flushes = d.flushes;
        s.disk_errors = d.errors;
        s.disk_requests = d.latency;
    }
    return s;
}
GuestMemory& Vm::memory() noexcept {
    return impl_->memory;
}
IoBus& Vm::port_bus() noexcept {
    return impl_->port_bus;
}
MemoryTopology& Vm::topology() noexcept {
    return impl_->topology;
}
AddressSpace& Vm::address_space() noexcept {
    return *impl_->address_space;
}
MemoryRegion& Vm::root_region() noexcept {
    return *impl_->root;
}
MemoryRegion& Vm::ram_region() noexcept {
    return *impl_->ram;
}
KvmMemory& Vm::kvm_memory() noexcept {
    return impl_->kvm_memory;
}

void Vm::dirty_log_start() {
    auto& impl = *impl_;
    MemoryTopology::Transaction tx(impl.topology);
    impl.dirty_logging.store(true);
    auto view = impl.address_space->view();
    for (const auto& sec : view->sections())
        if (sec.block != nullptr) sec.block->dirty().take(); // start from a clean slate
    impl.topology.set_dirty_logging(*impl.address_space, true);
    tx.commit();
}

std::vector<std::uint64_t> Vm::dirty_log_sync() {
    return impl_->collect_dirty();
}

void Vm::dirty_log_stop() {
    MemoryTopology::Transaction tx(impl_->topology);
    impl_->dirty_logging.store(false);
    impl_->topology.set_dirty_logging(*impl_->address_space, false);
    tx.commit();
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
        c += loop.exit_counts();
    if (impl_->disk) {
        auto d = impl_->disk->counters();
        c.ioeventfd_signals = d.doorbell_signals;
        c.ring_requests = d.ring_requests;
    }
    return c;
}

} // namespace minivmm
