#include "vcpu/vcpu_set.hpp"

#include <optional>

#include <sched.h>
#include <signal.h>

#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "minivmm/error.hpp"
#include "minivmm/seccomp.hpp"

namespace minivmm {

VcpuSet::VcpuSet(Options options, Hooks hooks)
    : options_(std::move(options)), hooks_(std::move(hooks)) {}

VcpuSet::~VcpuSet() {
    join();
}

unsigned VcpuSet::add(KvmVcpu vcpu, IoBus& pio, const AddressSpace& memory) {
    std::lock_guard lock(mutex_);
    if (state_ == State::stopped) throw ConfigError("cannot add a vCPU to a VM that is stopping");
    members_.push_back(std::make_unique<Member>(std::move(vcpu), pio, memory, *this));
    auto index = static_cast<unsigned>(members_.size() - 1);
    if (started_) start_locked(index);
    return index;
}

const KvmVcpu& VcpuSet::vcpu(unsigned i) const {
    std::lock_guard lock(mutex_);
    return members_.at(i)->vcpu;
}

std::size_t VcpuSet::size() const {
    std::lock_guard lock(mutex_);
    return members_.size();
}

VmExit VcpuSet::result() const {
    std::lock_guard lock(mutex_);
    return result_;
}

void VcpuSet::start() {
    vcpu_kick_signal(); // the handler exists before any thread can be kicked
    // Thread creation and kicks share the mutex, so a stop that races with
    // start-up still reaches every thread.
    std::lock_guard lock(mutex_);
    if (started_) throw ConfigError("the vCPUs were already started");
    started_ = true;
    if (state_ == State::created) state_ = State::running;
    for (unsigned i = 0; i < members_.size() && state_ != State::stopped; ++i)
        start_locked(i);
}

void VcpuSet::start_locked(unsigned index) {
    Member& m = *members_[index];
    try {
        m.thread = std::thread([this, &m, index] { thread_main(m, index); });
    } catch (const std::system_error& e) {
        stop_locked({VmExit::Kind::vmm_error, 0, -1,
                     fmt::format("cannot start a vCPU thread: {}", e.what())});
        return;
    }
    m.handle = m.thread.native_handle();
    m.started = true;
    ++running_threads_;
}

void VcpuSet::thread_main(Member& m, unsigned i) noexcept {
    if (!options_.cpus.empty()) {
        int cpu = options_.cpus[i % options_.cpus.size()];
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set)) {
            request_stop(
                {VmExit::Kind::vmm_error, 0, static_cast<int>(i),
                 fmt::format("cannot pin vcpu {} to host CPU {}: {}", i, cpu, std::strerror(rc))});
            return;
        }
    }
    // "vcpuN" in top -H, perf and /proc/PID/task/*/comm; named once pinned,
    // so that whoever finds the name also finds the thread on its CPU.
    pthread_setname_np(pthread_self(), fmt::format("vcpu{}", i).c_str());
    // Termination signals are the event loop's business, the kick is ours.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    sigemptyset(&set);
    sigaddset(&set, vcpu_kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    if (options_.seccomp) {
        try {
            install_seccomp(options_.role);
        } catch (const std::exception& e) {
            request_stop({VmExit::Kind::vmm_error, 0, static_cast<int>(i),
                          fmt::format("vcpu {}: {}", i, e.what())});
            return;
        }
    }
    m.loop.run();
}

void VcpuSet::join() {
    // Threads take the mutex to stop or park: join without it. No member is
    // added once the set stopped, and join is called after the stop.
    for (std::size_t i = 0;; ++i) {
        std::thread* t = nullptr;
        {
            std::lock_guard lock(mutex_);
            if (i >= members_.size()) break;
            t = &members_[i]->thread;
        }
        if (t->joinable()) t->join();
    }
}

void VcpuSet::request_stop(VmExit reason) noexcept {
    std::lock_guard lock(mutex_);
    stop_locked(std::move(reason));
}

void VcpuSet::stop_locked(VmExit reason) noexcept {
    if (state_ == State::stopped) return; // the first reason wins
    result_ = std::move(reason);
    state_ = State::stopped;
    stop_flag_.store(true, std::memory_order_release);
    kick_all_locked();
    stop_flag_.notify_all(); // parked vCPUs
    cv_.notify_all();        // paused vCPUs and pause() callers
    if (hooks_.stopped) hooks_.stopped();
}

void VcpuSet::kick_all_locked() noexcept {
    // immediate_exit catches a vCPU about to enter KVM_RUN, the signal one
    // already inside it (api.rst, kvm_run.immediate_exit).
    int sig = vcpu_kick_signal();
    for (auto& m : members_) {
        m->vcpu.run_state().immediate_exit = 1;
        if (m->started) pthread_kill(m->handle, sig);
    }
}

void VcpuSet::park(unsigned vcpu) noexcept {
    {
        std::lock_guard lock(mutex_);
        // The last vCPU to halt ends the VM; a parked vCPU counts as held
        // for pause().
        if (++parked_ == members_.size())
            stop_locked({VmExit::Kind::guest_exit, 0, static_cast<int>(vcpu), {}});
        cv_.notify_all();
    }
    stop_flag_.wait(false);
}

void VcpuSet::dirty_ring_full(unsigned) {
    if (hooks_.dirty_ring_full) hooks_.dirty_ring_full();
}

void VcpuSet::pause_point(const KvmVcpu& vcpu) noexcept {
    // Counted in the guest from here to left_guest. With exclusive() this is
    // Dekker's handshake (both sides store, then load, sequentially
    // consistent): either exclusive() sees this thread counted and waits
    // for it to leave, or this thread sees the section and holds here;
    // immediate_exit covers one already past this point.
    if (auto* flag = in_guest_flag(vcpu)) flag->store(true, std::memory_order_seq_cst);
    in_guest_.fetch_add(1, std::memory_order_seq_cst);
    if (!pause_flag_.load(std::memory_order_seq_cst) &&
        !exclusive_flag_.load(std::memory_order_seq_cst))
        return;
    left_guest(vcpu);
    std::unique_lock lock(mutex_);
    ++held_;
    cv_.notify_all();
    cv_.wait(lock,
             [&] { return state_ == State::stopped || (state_ != State::paused && !exclusive_); });
    --held_;
    // pause() or exclusive() set immediate_exit to kick us; take it back
    // unless a stop holds it (a later kick sets it again under this mutex).
    if (state_ != State::stopped) vcpu.run_state().immediate_exit = 0;
    if (auto* flag = in_guest_flag(vcpu)) flag->store(true, std::memory_order_seq_cst);
    in_guest_.fetch_add(1, std::memory_order_seq_cst); // under the mutex: no section starts
}

std::atomic<bool>* VcpuSet::in_guest_flag(const KvmVcpu& vcpu) noexcept {
    const int id = vcpu.id();
    return id >= 0 && static_cast<std::size_t>(id) < in_guest_by_id_.size() ? &in_guest_by_id_[id]
                                                                            : nullptr;
}

void VcpuSet::left_guest(const KvmVcpu& vcpu) noexcept {
    if (auto* flag = in_guest_flag(vcpu)) flag->store(false, std::memory_order_seq_cst);
    if (in_guest_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        exclusive_flag_.load(std::memory_order_seq_cst)) {
        std::lock_guard lock(mutex_); // no lost wake-up for exclusive()'s wait
        cv_.notify_all();
    }
}

bool VcpuSet::exclusive(const std::function<void()>& fn) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !exclusive_ || state_ == State::stopped; });
    if (state_ == State::stopped) return false;
    exclusive_ = true;
    exclusive_flag_.store(true, std::memory_order_seq_cst);
    // immediate_exit for every vCPU (one about to enter KVM_RUN returns at
    // once), the signal only for those that may be inside it: a vCPU that
    // flags itself after this load has seen exclusive_flag_ and holds.
    const int sig = vcpu_kick_signal();
    for (auto& m : members_) {
        m->vcpu.run_state().immediate_exit = 1;
        std::atomic_thread_fence(std::memory_order_seq_cst);
        auto* flag = in_guest_flag(m->vcpu);
        if (m->started && (!flag || flag->load(std::memory_order_seq_cst)))
            pthread_kill(m->handle, sig);
    }
    cv_.wait(lock, [&] {
        return in_guest_.load(std::memory_order_seq_cst) == 0 || state_ == State::stopped;
    });
    const bool run = state_ != State::stopped;
    if (run) {
        lock.unlock();
        fn();
        lock.lock();
    }
    exclusive_ = false;
    exclusive_flag_.store(false, std::memory_order_seq_cst);
    cv_.notify_all(); // the held vCPUs (they take back their kicks) and waiting sections
    return run;
}

void VcpuSet::kicked(const KvmVcpu& vcpu) noexcept {
    // A pause withdrawn before this vCPU reached pause_point (it timed out,
    // or came before start) leaves its kick set, and pause_point takes it
    // back only while paused. Only on EINTR: not a hot path.
    std::optional<unsigned> interrupted;
    {
        std::lock_guard lock(mutex_);
        if ((state_ == State::running || state_ == State::created) && !exclusive_)
            vcpu.run_state().immediate_exit = 0;
        for (unsigned i = 0; i < members_.size(); ++i)
            if (&members_[i]->vcpu == &vcpu && members_[i]->interrupt.exchange(false))
                interrupted = i;
    }
    if (!interrupted || !hooks_.interrupted || stopping()) return;
    try {
        hooks_.interrupted(*interrupted, vcpu);
    } catch (const std::exception& e) {
        request_stop({VmExit::Kind::vmm_error, 0, static_cast<int>(*interrupted), e.what()});
    }
}

void VcpuSet::interrupt(unsigned index) {
    std::lock_guard lock(mutex_);
    if (index >= members_.size() || state_ == State::stopped) return;
    Member& m = *members_[index];
    m.interrupt.store(true);
    // As exclusive() does: immediate_exit for a vCPU about to enter, the
    // signal only for one that may be inside KVM_RUN (a signal would end a
    // host call in its exit handler with EINTR).
    m.vcpu.run_state().immediate_exit = 1;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    auto* flag = in_guest_flag(m.vcpu);
    if (m.started && (!flag || flag->load(std::memory_order_seq_cst)))
        pthread_kill(m.handle, vcpu_kick_signal());
}

bool VcpuSet::pause(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    if (state_ == State::stopped) return false;
    state_ = State::paused;
    pause_flag_.store(true, std::memory_order_release);
    kick_all_locked();
    if (!started_) return true; // the threads will start held
    return cv_.wait_for(lock, wait, [&] {
        return state_ != State::paused || held_ + parked_ >= running_threads_;
    }) && state_ == State::paused;
}

void VcpuSet::resume() noexcept {
    std::lock_guard lock(mutex_);
    if (state_ != State::paused) return;
    state_ = started_ ? State::running : State::created;
    pause_flag_.store(false, std::memory_order_release);
    cv_.notify_all();
}

ExitCounts VcpuSet::exit_counts() const {
    std::lock_guard lock(mutex_);
    ExitCounts c;
    for (const auto& m : members_)
        c += m->loop.exit_counts();
    return c;
}

void VcpuSet::for_each_loop(const std::function<void(const VcpuLoop&)>& fn) const {
    std::lock_guard lock(mutex_);
    for (const auto& m : members_)
        fn(m->loop);
}

} // namespace minivmm
