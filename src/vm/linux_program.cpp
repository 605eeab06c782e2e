// A Linux program in a ring-3 guest (docs/linux-programs.md). The VM has
// boot RAM for the program's pages, a second KVM slot holding only its page
// tables, one vCPU, and two ports that only the VMM's ring-0 code can
// reach: the system call entry and the exception report.
#include "minivmm/linux_program.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "boot/program_supervisor.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/log.hpp"
#include "minivmm/ram_block.hpp"
#include "minivmm/unique_fd.hpp"
#include "minivmm/vm.hpp"
#include "program/elf_executable.hpp"
#include "program/file_sandbox.hpp"
#include "program/file_syscalls.hpp"
#include "program/file_table.hpp"
#include "program/initial_stack.hpp"
#include "program/process_calls.hpp"
#include "program/process_memory.hpp"
#include "program/signal_frame.hpp"
#include "program/syscall_dispatcher.hpp"
#include "program/vdso.hpp"
#include "vcpu/vcpu_set.hpp"
#include "vm/vm_memory.hpp"

namespace minivmm {

namespace P = program_layout;
using namespace linux_abi;

namespace {

constexpr std::uint64_t kPage = layout::kPageSize;
constexpr std::uint64_t k2M = layout::kLargePageSize;
constexpr std::uint32_t kMsrTsc = 0x10, kMsrFsBase = 0xc0000100, kMsrGsBase = 0xc0000101;

// The user layout, as Linux lays out an x86-64 process without ASLR: the
// vDSO's data page and image at the top of user space, the stack below
// them, then Linux's stack guard gap, and the mmap area growing down from
// there (mm/util.c mmap_base; arch/x86/entry/vdso/vma.c).
constexpr std::uint64_t kUserEnd = ElfExecutable::kUserEnd;
constexpr std::uint64_t kVvarAddress = kUserEnd - 0x10000;
constexpr std::uint64_t kStackTop = kVvarAddress - 0x10000;
constexpr std::uint64_t kStackGuardGap = 256 * kPage; // stack_guard_gap

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

int prot_of(const ElfSegment& seg) {
    return (seg.readable ? PROT_READ : 0) | (seg.writable ? PROT_WRITE : 0) |
           (seg.executable ? PROT_EXEC : 0);
}

// What Linux reports for an exception in user mode
// (arch/x86/kernel/traps.c, arch/x86/mm/fault.c).
struct SignalFor {
    int signal;
    const char* what;
};
SignalFor signal_for(unsigned vector) {
    switch (vector) {
    case 0:
        return {SIGFPE, "divide error"};
    case 1:
    case 3:
        return {SIGTRAP, "trap"};
    case 6:
        return {SIGILL, "invalid opcode"};
    case 7:
        return {SIGFPE, "device not available"};
    case 12:
        return {SIGBUS, "stack segment fault"};
    case 13:
        return {SIGSEGV, "general protection fault"};
    case 14:
        return {SIGSEGV, "page fault"};
    case 16:
    case 19:
        return {SIGFPE, "floating-point exception"};
    case 17:
        return {SIGBUS, "alignment check"};
    default:
        return {SIGSEGV, "exception"};
    }
}

// A signal's si_code and si_addr for an exception in user mode
// (arch/x86/kernel/traps.c do_trap and do_error_trap, arch/x86/mm/fault.c).
SignalInfo fault_info(int signal, unsigned vector, std::uint64_t error, std::uint64_t rip,
                      std::uint64_t cr2) {
    constexpr int kSiKernel = 0x80;
    SignalInfo info;
    info.signo = signal;
    info.fault = true;
    switch (vector) {
    case 0: // FPE_INTDIV
        info.code = 1;
        info.addr = rip;
        break;
    case 6: // ILL_ILLOPN
        info.code = 2;
        info.addr = rip;
        break;
    case 14: // SEGV_ACCERR for a present page, else SEGV_MAPERR
        info.code = (error & 1) ? 2 : 1;
        info.addr = cr2;
        break;
    case 17: // BUS_ADRALN
        info.code = 1;
        info.addr = rip;
        break;
    default: // #GP, #SS, int3, ...: force_sig, SI_KERNEL with no address
        info.code = kSiKernel;
        info.addr = 0;
        break;
    }
    return info;
}

UserRegisters user_registers(const kvm_regs& r) {
    UserRegisters u;
    u.r8 = r.r8, u.r9 = r.r9, u.r10 = r.r10, u.r11 = r.r11;
    u.r12 = r.r12, u.r13 = r.r13, u.r14 = r.r14, u.r15 = r.r15;
    u.rdi = r.rdi, u.rsi = r.rsi, u.rbp = r.rbp, u.rbx = r.rbx;
    u.rdx = r.rdx, u.rax = r.rax, u.rcx = r.rcx, u.rsp = r.rsp;
    u.rip = r.rip, u.rflags = r.rflags;
    return u;
}

// Every general register, RIP and RFLAGS of `u` into `r`.
void set_user_registers(kvm_regs& r, const UserRegisters& u) {
    r.r8 = u.r8, r.r9 = u.r9, r.r10 = u.r10, r.r11 = u.r11;
    r.r12 = u.r12, r.r13 = u.r13, r.r14 = u.r14, r.r15 = u.r15;
    r.rdi = u.rdi, r.rsi = u.rsi, r.rbp = u.rbp, r.rbx = u.rbx;
    r.rdx = u.rdx, r.rax = u.rax, r.rcx = u.rcx, r.rsp = u.rsp;
    r.rip = u.rip, r.rflags = u.rflags;
}

// Counts one on an eventfd, to wake the main thread's poll.
void notify(const UniqueFd& event) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event.get(), &one, sizeof one);
}

// The program's ring-3 segments for vCPU `index`, to return to user mode
// without ring-0 code, keeping the thread's FS and GS bases (which
// KVM_SET_SREGS would otherwise set from the segments: TLS lives there).
kvm_sregs user_mode_sregs(const kvm_sregs& now, unsigned index, std::uint64_t cr3) {
    kvm_sregs s = program_sregs(now, index, cr3);
    s.fs.base = now.fs.base;
    s.gs.base = now.gs.base;
    return s;
}

using ThreadStarter = std::function<std::int64_t(const KvmVcpu& parent, const NewThread&)>;

// The calling vCPU's registers that arch_prctl reads and writes, and the
// runner's way to start a thread beside it.
class VcpuThreadContext final : public ThreadContext {
  public:
    VcpuThreadContext(const KvmVcpu& vcpu, int tid, const ThreadStarter& starter)
        : vcpu_(vcpu), tid_(tid), starter_(starter) {}
    std::int64_t start_thread(const NewThread& thread) override { return starter_(vcpu_, thread); }
    std::uint64_t fs_base() const override { return vcpu_.msr(kMsrFsBase); }
    void set_fs_base(std::uint64_t v) override { set(kMsrFsBase, v); }
    std::uint64_t gs_base() const override { return vcpu_.msr(kMsrGsBase); }
    void set_gs_base(std::uint64_t v) override { set(kMsrGsBase, v); }
    int tid() const override { return tid_; }
    std::uint64_t stack_pointer() const override { return vcpu_.regs().rsp; }

  private:
    void set(std::uint32_t index, std::uint64_t v) {
        const KvmVcpu::Msr msr{index, v};
        vcpu_.set_msrs(std::span(&msr, 1));
    }
    const KvmVcpu& vcpu_;
    int tid_;
    const ThreadStarter& starter_;
};

} // namespace

int LinuxProgramExit::shell_status() const noexcept {
    switch (kind) {
    case Kind::exited:
        return code & 0xff;
    case Kind::killed:
    case Kind::stopped:
        return 128 + signal;
    case Kind::timeout:
        return 124;
    case Kind::vmm_error:
        return 125;
    }
    return 125;
}

struct LinuxProgram::Impl {
    Impl(const KvmSystem& kvm, LinuxProgramConfig cfg);

    // The two ports of the VMM's ring-0 code.
    class SyscallEntry final : public IoDevice {
      public:
        explicit SyscallEntry(Impl& impl) : impl_(impl) {}
        ExitAction access(const IoAccess& access) override { return impl_.syscall(access); }

      private:
        Impl& impl_;
    };
    class ExceptionReport final : public IoDevice {
      public:
        explicit ExceptionReport(Impl& impl) : impl_(impl) {}
        ExitAction access(const IoAccess& access) override { return impl_.exception(access); }

      private:
        Impl& impl_;
    };

    ExitAction syscall(const IoAccess& access);
    // clone of a thread: a vCPU of its own, with `parent`'s registers.
    std::int64_t start_thread(const KvmVcpu& parent, const NewThread& thread);
    int tid_of(unsigned vcpu) const;
    ExitAction exception(const IoAccess& access);
    // Signals (signal_frame.hpp): runs the handler of the next signal due
    // for thread `tid`, whose registers are `regs`, on `vcpu`: at the system
    // call entry (`at_entry`: the user RIP and RFLAGS in rcx and r11, back
    // through sysretq) or in user mode. Resumes (with `regs` as they are
    // when nothing is due), or ends the program.
    ExitAction deliver_signal(const KvmVcpu& vcpu, unsigned index, int tid, kvm_regs& regs,
                              bool at_entry);
    // rt_sigreturn on `vcpu`, whose registers are `regs`.
    ExitAction sigreturn(const KvmVcpu& vcpu, unsigned index, int tid, kvm_regs& regs);
    // Sets `vcpu`'s x87/SSE state (the legacy area of its XSAVE image).
    void set_fxsave(const KvmVcpu& vcpu, std::span<const std::byte, 512> fx);
    // Writes the frame of `request` for a thread whose registers are `user`
    // (the FPU state read from `vcpu`) and gives `vcpu` the handler's clean
    // FPU: the registers the handler starts with, or nullopt when no frame
    // could be written (then no_frame ends the program: force_sigsegv).
    std::optional<UserRegisters> write_frame(const KvmVcpu& vcpu, UserRegisters user,
                                             const SignalFrameRequest& request);
    ExitAction no_frame(unsigned index, int sig, std::uint64_t sp);
    // VcpuSet's interrupted hook: a signal is due for the thread on `index`.
    void interrupted(unsigned index, const KvmVcpu& vcpu);
    // The vCPU running thread `tid`, if one does.
    std::optional<unsigned> vcpu_of(int tid) const;
    // Ends the program with `exit` (the first end wins) and stops the vCPUs.
    ExitAction end(LinuxProgramExit exit, unsigned vcpu);
    void flush_translations();
    void load(const ElfExecutable& exe, std::span<const std::byte> file, const std::string& name);
    // The program's interpreter (PT_INTERP), read, checked and loaded as
    // Linux's load_elf_interp does.
    ElfExecutable load_interpreter(const ElfExecutable& exe);
    std::uint64_t map_vdso();
    InitialStack build_stack(const ElfExecutable& exe, std::uint64_t at_base,
                             std::uint64_t vdso_base, const std::vector<kvm_cpuid_entry2>& cpuid);
    LinuxProgramExit wait();
    // run()'s loop until the vCPUs stop.
    void watch(const UniqueFd& signals,
               std::optional<std::chrono::steady_clock::time_point> deadline);

    LinuxProgramConfig config;
    VmConfig vm_config;
    KvmVm vm;
    VmMemory memory;
    // The page tables' own RAM, at table_gpa above boot RAM: re-creating
    // its KVM slot is how the VMM makes KVM drop every translation derived
    // from them (flush_translations).
    std::uint64_t table_gpa;
    std::shared_ptr<RamBlock> table_block;
    std::shared_ptr<MemoryRegion> table_region;
    ProcessMemory process;
    FileTable files;
    FileSandbox sandbox;
    FileSystemCalls file_calls;
    ProcessCalls process_calls;
    SyscallDispatcher dispatcher;
    SyscallEntry syscall_entry{*this};
    ExceptionReport exception_report{*this};
    IoBus port_bus{"port"};
    UniqueFd stopped_event; // written once the vCPU set stopped: wakes run()
    UniqueFd timer_event;   // written when the program's interval timer changes
    VcpuSet vcpus;
    std::optional<VdsoPublisher> vdso;
    std::vector<kvm_cpuid_entry2> cpuid;
    ThreadStarter starter{
        [this](const KvmVcpu& parent, const NewThread& t) { return start_thread(parent, t); }};
    // A thread's start on a vCPU whose thread has exited (Impl::retire).
    struct Assignment {
        int tid;
        kvm_regs regs; // at user mode: rip, rflags, rsp, rax 0
        std::uint64_t fs_base, gs_base;
    };
    // retire(): the vCPU of an exited thread waits, in its exit handler, to
    // run the program's next new thread.
    ExitAction retire(const IoAccess& access);
    mutable std::mutex thread_mutex;
    std::condition_variable thread_cv;
    std::vector<int> vcpu_tids;                 // the program's tid on each vCPU; thread_mutex
    std::vector<unsigned> idle_vcpus;           // retired, waiting; thread_mutex
    std::map<unsigned, Assignment> assignments; // vCPU -> its next thread; thread_mutex
    std::uint64_t vvar_frame = 0;               // the vDSO's data page
    bool ran = false;

    mutable std::mutex end_mutex;
    std::optional<LinuxProgramExit> outcome; // guarded by end_mutex
    std::atomic<std::uint64_t> syscalls{0};
    std::atomic<std::uint64_t> flushes{0};
};

namespace {

VmConfig vm_config_for(const LinuxProgramConfig& config) {
    if (config.mem_size % k2M != 0 || config.mem_size < 16 * k2M)
        throw ConfigError(fmt::format("program memory of {} bytes: it must be a multiple of 2 MiB "
                                      "and at least 32 MiB",
                                      config.mem_size));
    if (config.stack_size % kPage != 0 || config.stack_size < 16 * kPage ||
        config.stack_size > config.mem_size / 4)
        throw ConfigError(fmt::format("program stack of {} bytes: it must be whole pages, at "
                                      "least 64 KiB and at most a quarter of its memory",
                                      config.stack_size));
    if (config.max_threads == 0 || config.max_threads > layout::kMaxVcpus)
        throw ConfigError(fmt::format("{} threads: a program may have 1 to {} (one vCPU each)",
                                      config.max_threads, layout::kMaxVcpus));
    VmConfig c;
    c.mem_size = config.mem_size;
    c.vcpus = 1;
    c.handle_signals = false;
    c.seccomp = config.seccomp;
    c.vcpu_cpus = config.vcpu_cpus;
    return c;
}

// Page-table RAM: enough for every data page mapped with 4 KiB pages (one
// 4 KiB table per 2 MiB), their directories, and tables freed but not yet
// reusable before a flush.
std::uint64_t table_bytes_for(std::uint64_t mem_size) {
    return align_up(std::max<std::uint64_t>(4ull << 20, mem_size / 128), k2M);
}

std::shared_ptr<RamBlock> make_table_block(std::uint64_t mem_size) {
    RamBlockOptions options; // plain anonymous memory: it is small
    return std::make_shared<RamBlock>("page-tables", table_bytes_for(mem_size), options);
}

ProcessCalls::Options process_options(const LinuxProgramConfig& config,
                                      std::function<bool()> interrupted,
                                      std::function<void(int)> interrupt_thread,
                                      std::function<void()> timers_changed) {
    ProcessCalls::Options o;
    o.interrupt_thread = std::move(interrupt_thread);
    o.timers_changed = std::move(timers_changed);
    o.stack_size = config.stack_size;
    o.cpus = 1;
    o.max_threads = static_cast<int>(config.max_threads);
    o.interrupted = std::move(interrupted);
    auto slash = config.path.rfind('/');
    o.command_name = config.path.substr(slash == std::string::npos ? 0 : slash + 1);
    return o;
}

} // namespace

LinuxProgram::Impl::Impl(const KvmSystem& kvm, LinuxProgramConfig cfg)
    : config(std::move(cfg)), vm_config(vm_config_for(config)), vm(kvm.create_vm()),
      memory(vm, vm_config), table_gpa(align_up(config.mem_size, k2M)),
      table_block(make_table_block(config.mem_size)),
      process(PhysicalRange{layout::kReservedEnd,
                            std::span(memory.boot_ram().host_base() + layout::kReservedEnd,
                                      config.mem_size - layout::kReservedEnd)},
              PhysicalRange{table_gpa, std::span(static_cast<std::byte*>(table_block->host()),
                                                 table_block->size())},
              ProcessMemory::Layout{ElfExecutable::kMinAddress,
                                    kStackTop - config.stack_size - kStackGuardGap, kUserEnd}),
      sandbox(config.workdir, config.writable_dirs), file_calls(files, sandbox, process),
      process_calls(process_options(
                        config, [this] { return vcpus.stopping() || vcpus.paused(); },
                        [this](int tid) {
                            if (auto index = vcpu_of(tid)) vcpus.interrupt(*index);
                        },
                        [this] { notify(timer_event); }),
                    process, files),
      dispatcher(file_calls, process_calls,
                 [this](const SyscallArgs& args) { return process.call(args, files); }),
      stopped_event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      timer_event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      vcpus({config.vcpu_cpus, config.seccomp, ThreadRole::program},
            {[this] {
                 notify(stopped_event);
                 process_calls.wake_all(); // threads in a sleep or a futex wait
             },
             [] {}, [this](unsigned index, const KvmVcpu& vcpu) { interrupted(index, vcpu); }}) {
    if (!stopped_event || !timer_event) throw SystemError("eventfd", errno);
    // The page tables' slot, beside boot RAM.
    table_region = MemoryRegion::ram("page-tables", table_block, 0, table_block->size());
    {
        MemoryTopology::Transaction tx(memory.topology());
        memory.topology().add_subregion(memory.root(), table_gpa, table_region);
        tx.commit();
    }

    // A program larger than its RAM could never load (a device or a FIFO
    // would never end: read_image_file takes regular files only).
    auto file = read_image_file(config.path, config.mem_size - layout::kReservedEnd);
    ElfLoadOptions load_options;
    load_options.memory_limit = config.mem_size - layout::kReservedEnd;
    ElfExecutable exe = parse_elf_executable(file, load_options, config.path);

    // A TSS and exception stack per vCPU the program's threads may have.
    build_program_supervisor(memory.boot_ram(), config.max_threads);
    // The VMM's ring-0 pages, for ring 0 only: code and tables read-only,
    // the exception stacks writable.
    process.map_supervisor(P::kSupervisorStart, P::kSupervisorStart,
                           P::kSupervisorWritable - P::kSupervisorStart, false, true);
    process.map_supervisor(P::kSupervisorWritable, P::kSupervisorWritable,
                           P::kSupervisorEnd - P::kSupervisorWritable, true, false);
    // fs/binfmt_elf.c load_elf_binary: the program first, at its own
    // addresses or ELF_ET_DYN_BASE, then its interpreter in the mmap area.
    load(exe, file, config.path);
    process.set_brk_base(exe.brk_start);
    std::uint64_t vdso_base = map_vdso();
    std::optional<ElfExecutable> interp;
    if (!exe.interpreter.empty()) interp = load_interpreter(exe);

    cpuid = kvm.supported_cpuid();
    // AT_BASE is where the interpreter went (its load bias), 0 without one,
    // even for a static-pie; AT_ENTRY and AT_PHDR stay the program's.
    InitialStack stack = build_stack(exe, interp ? interp->load_bias : 0, vdso_base, cpuid);
    process.map_anonymous_fixed(kStackTop - config.stack_size, config.stack_size,
                                PROT_READ | PROT_WRITE | (exe.stack_executable ? PROT_EXEC : 0),
                                "[stack]");
    if (!process.poke(stack.rsp, stack.bytes))
        throw ConfigError("the initial stack does not fit in the program's stack");

    files.adopt_vmm_stdio();
    port_bus.add(P::kSyscallPort, 1, syscall_entry);
    port_bus.add(P::kExceptionPort, 1, exception_report);

    KvmVcpu vcpu = vm.create_vcpu(0);
    vcpu.set_cpuid(cpuid);
    vcpu.set_sregs(program_sregs(vcpu.sregs(), 0, process.cr3()));
    vcpu.set_msrs(program_syscall_msrs());
    kvm_regs regs{};
    regs.rip = interp ? interp->entry : exe.entry; // the interpreter starts the program
    regs.rsp = stack.rsp;
    regs.rflags = 0x202; // IF, and the always-one bit 1, as Linux starts a process
    // RDX = 0: no function for the program to register with atexit (the
    // x86-64 psABI's process entry; start_thread leaves it 0 too).
    vcpu.set_regs(regs);

    // The vDSO's clocks: the guest's TSC is the host's plus KVM's offset.
    std::uint64_t host_before = __rdtsc();
    std::uint64_t guest = vcpu.msr(kMsrTsc);
    std::uint64_t host_after = __rdtsc();
    auto offset = static_cast<std::int64_t>(guest - (host_before + (host_after - host_before) / 2));
    VdsoPublisher::Options vdso_options;
    if (auto khz = vcpu.tsc_khz()) vdso_options.tsc_khz_hint = khz;
    vdso_options.getcpu = VdsoGetcpu::fixed;
    vdso.emplace(process.frame_bytes(vvar_frame, kVdsoPageSize),
                 std::make_unique<HostClockSource>(offset), vdso_options);

    vcpu_tids.push_back(process_calls.pid());
    vcpus.add(std::move(vcpu), port_bus, memory.address_space());
}

ExitAction LinuxProgram::Impl::retire(const IoAccess& access) {
    const unsigned index = access.vcpu_index;
    std::unique_lock lock(thread_mutex);
    vcpu_tids.at(index) = 0;
    idle_vcpus.push_back(index);
    thread_cv.notify_all();
    // Checked every 50 ms: a stop does not come through this mutex.
    while (!assignments.count(index)) {
        if (vcpus.stopping()) return ExitAction::stop;
        thread_cv.wait_for(lock, std::chrono::milliseconds(50));
    }
    const Assignment a = assignments.at(index);
    assignments.erase(index);
    vcpu_tids.at(index) = a.tid;
    lock.unlock();
    // Back to user mode as the new thread through the entry's own sysretq
    // (rcx and r11 are the RIP and RFLAGS it restores; RSP is left as set):
    // RIP set past the `out`, which KVM then does not advance again.
    kvm_regs regs = a.regs;
    regs.rcx = a.regs.rip;
    regs.r11 = a.regs.rflags;
    regs.rip = P::kSyscallExitRip;
    regs.rflags = 0x2; // at CPL 0 in the entry: interrupts off, as after `syscall`
    const KvmVcpu::Msr msrs[] = {{kMsrFsBase, a.fs_base}, {kMsrGsBase, a.gs_base}};
    access.vcpu.set_msrs(msrs);
    access.vcpu.set_regs(regs);
    return ExitAction::resume;
}

int LinuxProgram::Impl::tid_of(unsigned vcpu) const {
    std::lock_guard lock(thread_mutex);
    return vcpu < vcpu_tids.size() ? vcpu_tids[vcpu] : process_calls.pid();
}

std::int64_t LinuxProgram::Impl::start_thread(const KvmVcpu& parent, const NewThread& thread) {
    // copy_thread: the child returns from the same system call with the
    // parent's registers, rax 0, its own stack and TLS. At the entry's port
    // exit the parent's user RIP and RFLAGS are where `syscall` put them
    // (rcx, r11), and RSP is still the user's: the entry uses no stack.
    std::unique_lock lock(thread_mutex);
    if (vcpus.stopping()) return -EAGAIN;
    // Every vCPU taken: a thread that has exited may not have reached
    // retire() yet (the program already counts it gone).
    if (idle_vcpus.empty() && vcpu_tids.size() >= config.max_threads)
        thread_cv.wait_for(lock, std::chrono::seconds(1), [&] { return !idle_vcpus.empty(); });
    kvm_regs regs = parent.regs();
    regs.rip = regs.rcx;
    regs.rflags = regs.r11;
    regs.rax = 0;
    if (thread.stack) regs.rsp = thread.stack;
    const std::uint64_t fs = thread.set_tls ? thread.tls : parent.msr(kMsrFsBase);
    const std::uint64_t gs = parent.msr(kMsrGsBase);
    if (!idle_vcpus.empty()) {
        // The vCPU of a thread that has exited takes it.
        const unsigned index = idle_vcpus.back();
        idle_vcpus.pop_back();
        assignments[index] = Assignment{thread.tid, regs, fs, gs};
        thread_cv.notify_all();
        return 0;
    }
    const auto index = static_cast<unsigned>(vcpu_tids.size());
    if (index >= config.max_threads) return -EAGAIN;
    try {
        KvmVcpu vcpu = vm.create_vcpu(index);
        vcpu.set_cpuid(cpuid);
        vcpu.set_sregs(user_mode_sregs(vcpu.sregs(), index, process.cr3()));
        auto msrs = program_syscall_msrs();
        msrs.push_back({kMsrFsBase, fs});
        msrs.push_back({kMsrGsBase, gs});
        vcpu.set_msrs(msrs);
        vcpu.set_regs(regs);
        vcpu_tids.push_back(thread.tid);
        vcpus.add(std::move(vcpu), port_bus, memory.address_space());
    } catch (const std::exception& e) {
        // No vCPU for it (KVM's limit, memory): the program sees EAGAIN, as
        // from a fork beyond RLIMIT_NPROC.
        if (vcpu_tids.size() > index) vcpu_tids.resize(index);
        logger().warn("guest program: cannot start thread {}: {}", thread.tid, e.what());
        return -EAGAIN;
    }
    return 0;
}

void LinuxProgram::Impl::load(const ElfExecutable& exe, std::span<const std::byte> file,
                              const std::string& name) {
    for (const auto& seg : exe.segments) {
        process.map_anonymous_fixed(seg.start, seg.size(), prot_of(seg), name);
        if (!process.poke(seg.start, file.subspan(seg.file_offset, seg.file_size)))
            throw ImageError(fmt::format("{}: cannot load the segment at {:#x}", name, seg.start));
    }
}

ElfExecutable LinuxProgram::Impl::load_interpreter(const ElfExecutable& exe) {
    // The host's file, read-only, as the program's own files are; a
    // relative path is the program's working directory's, as Linux's open_exec.
    std::string path = exe.interpreter;
    if (path.front() != '/' && !config.workdir.empty()) path = config.workdir + "/" + path;
    const std::uint64_t limit = config.mem_size - layout::kReservedEnd;
    ElfLoadOptions options;
    options.memory_limit = limit;
    options.interpreter = true;
    try {
        auto file = read_image_file(path, limit);
        // Parsed once to learn its size and alignment, then placed where an
        // mmap without a hint would go, top-down below the stack's guard
        // gap, as load_elf_interp's first elf_map (total_mapping_size).
        ElfExecutable interp = parse_elf_executable(file, options, path);
        auto base = process.free_area(interp.span(), interp.align);
        if (!base)
            throw ImageError(
                fmt::format("{}: no room for its {} bytes in the mmap area", path, interp.span()));
        options.pie_base = *base;
        interp = parse_elf_executable(file, options, path);
        load(interp, file, path);
        return interp;
    } catch (const ImageError& e) {
        // One line naming the program, then what is wrong with its interpreter.
        throw ImageError(fmt::format("{}: its interpreter {}", config.path, e.what()));
    }
}

std::uint64_t LinuxProgram::Impl::map_vdso() {
    // The data page, then the image (vdso.hpp), in frames the VMM keeps,
    // which the program sees read-only at the top of its space.
    auto image = vdso_image();
    const std::uint64_t image_pages = vdso_mapped_size() / kPage;
    std::vector<std::uint64_t> frames = process.alloc_frames(1 + image_pages);
    for (std::uint64_t i = 0; i < image_pages; ++i) {
        auto chunk =
            image.subspan(i * kPage, std::min<std::size_t>(kPage, image.size() - i * kPage));
        auto bytes = process.frame_bytes(frames[1 + i], kPage);
        std::memcpy(bytes.data(), chunk.data(), chunk.size());
    }
    vvar_frame = frames[0];
    std::vector<std::uint64_t> vvar{frames[0]}, text(frames.begin() + 1, frames.end());
    process.map_frames(kVvarAddress, vvar, PROT_READ, "[vvar]");
    process.map_frames(kVvarAddress + kPage, text, PROT_READ | PROT_EXEC, "[vdso]");
    return kVvarAddress + kPage;
}

InitialStack LinuxProgram::Impl::build_stack(const ElfExecutable& exe, std::uint64_t at_base,
                                             std::uint64_t vdso_base,
                                             const std::vector<kvm_cpuid_entry2>& cpuid) {
    InitialStackInputs in;
    in.stack_top = kStackTop;
    in.argv = config.argv.empty() ? std::vector<std::string>{config.path} : config.argv;
    in.envp = config.env;
    in.execfn = config.path;
    if (::getrandom(in.random.data(), in.random.size(), 0) !=
        static_cast<ssize_t>(in.random.size()))
        throw SystemError("getrandom", errno);
    in.phdr = exe.phdr;
    in.phent = exe.phent;
    in.phnum = exe.phnum;
    in.entry = exe.entry;
    in.base = at_base;
    // AT_HWCAP on x86 is CPUID.1:EDX, as the vCPU reports it.
    for (const auto& e : cpuid)
        if (e.function == 1) in.hwcap = e.edx;
    in.uid = ::getuid();
    in.euid = ::geteuid();
    in.gid = ::getgid();
    in.egid = ::getegid();
    in.sysinfo_ehdr = vdso_base;
    // The signal frame size the host's kernel computed for this CPU.
    in.minsigstksz = ::getauxval(AT_MINSIGSTKSZ) ? ::getauxval(AT_MINSIGSTKSZ) : 2048;
    in.max_arg_bytes =
        std::min<std::size_t>(config.stack_size / 4, 32 * InitialStackInputs::kDefaultMaxArgBytes);
    return build_initial_stack(in);
}

ExitAction LinuxProgram::Impl::end(LinuxProgramExit exit, unsigned vcpu) {
    VmExit reason{VmExit::Kind::guest_exit, exit.code, static_cast<int>(vcpu), exit.message};
    {
        std::lock_guard lock(end_mutex);
        if (!outcome) outcome = std::move(exit);
    }
    vcpus.request_stop(std::move(reason));
    return ExitAction::stop;
}

void LinuxProgram::Impl::flush_translations() {
    // A shadow-paging KVM never sees the VMM's own writes to the guest's page
    // tables, and a hardware walker's TLB keeps what it cached: removing the
    // KVM slot that holds the tables makes KVM zap every translation derived
    // from them and flush each vCPU's TLB before it runs again (api.rst 4.35,
    // as map_hotplug_ram relies on for unplugged RAM). Two commits: a batch
    // of both would cancel out.
    // While the slot is gone no other vCPU may run guest code: its page
    // walks would find no tables there (VcpuSet::exclusive holds them).
    auto toggle = [this] {
        memory.topology().set_enabled(*table_region, false);
        memory.topology().set_enabled(*table_region, true);
    };
    if (!vcpus.exclusive(toggle)) toggle(); // stopping: nobody runs again
    flushes.fetch_add(1, std::memory_order_relaxed);
}

ExitAction LinuxProgram::Impl::syscall(const IoAccess& access) {
    kvm_regs regs = access.vcpu.regs();
    // The port is closed to ring 3 (TSS I/O bitmap): only the entry stub
    // reaches it. RIP is still at its `out` until KVM_RUN completes the
    // instruction (api.rst, KVM_RUN: I/O is complete only on re-entry), or
    // past it where KVM advances RIP before the exit.
    if (regs.rip != P::kSyscallEntry && regs.rip != P::kSyscallExitRip)
        return end(
            {LinuxProgramExit::Kind::vmm_error, 0, 0,
             fmt::format("system call port written from rip {:#x}, not the entry", regs.rip)},
            access.vcpu_index);
    SyscallArgs args;
    args.nr = regs.rax;
    args.a[0] = regs.rdi;
    args.a[1] = regs.rsi;
    args.a[2] = regs.rdx;
    args.a[3] = regs.r10;
    args.a[4] = regs.r8;
    args.a[5] = regs.r9;
    VcpuThreadContext thread(access.vcpu, tid_of(access.vcpu_index), starter);
    SyscallResult result = dispatcher.dispatch(args, thread);
    syscalls.fetch_add(1, std::memory_order_relaxed);
    if (auto batch = process.begin_shootdown()) {
        // Every vCPU drops what it held before the batch's frames and table
        // pages can be used again, also while other threads keep changing
        // their mappings (they start batches of their own).
        flush_translations();
        process.end_shootdown(std::move(*batch));
    }
    switch (result.then) {
    case SyscallResult::Then::resume:
        break;
    case SyscallResult::Then::exit_thread:
        // This vCPU is done; the last thread's exit ends the program
        // (kernel/exit.c do_exit of a thread group's last member).
        if (!result.last_thread) return retire(access);
        [[fallthrough]];
    case SyscallResult::Then::exit_process:
        return end({LinuxProgramExit::Kind::exited, result.status & 0xff, 0, {}},
                   access.vcpu_index);
    case SyscallResult::Then::killed_by_signal:
        return end({LinuxProgramExit::Kind::killed, 0, result.status,
                    result.message.empty()
                        ? fmt::format("killed by SIG{}", sigabbrev_np(result.status))
                        : result.message},
                   access.vcpu_index);
    case SyscallResult::Then::sigreturn:
        return sigreturn(access.vcpu, access.vcpu_index, thread.tid(), regs);
    }
    regs.rax = static_cast<std::uint64_t>(result.value);
    // exit_to_user_mode_loop: a signal due now runs its handler first.
    return deliver_signal(access.vcpu, access.vcpu_index, thread.tid(), regs, true);
}

void LinuxProgram::Impl::set_fxsave(const KvmVcpu& vcpu, std::span<const std::byte, 512> fx) {
    KvmVcpu::XsaveImage x = vcpu.xsave();
    std::memcpy(x.bytes.data(), fx.data(), fx.size());
    // XSTATE_BV (the header's first word, at byte 512): x87 and SSE come
    // from the image rather than their initial state.
    std::uint64_t bv;
    std::memcpy(&bv, x.bytes.data() + 512, sizeof bv);
    bv |= 3;
    std::memcpy(x.bytes.data() + 512, &bv, sizeof bv);
    vcpu.set_xsave(x);
}

std::optional<UserRegisters> LinuxProgram::Impl::write_frame(const KvmVcpu& vcpu,
                                                             UserRegisters user,
                                                             const SignalFrameRequest& request) {
    const KvmVcpu::XsaveImage fpu = vcpu.xsave();
    std::memcpy(user.fxsave.data(), fpu.bytes.data(), user.fxsave.size());
    auto handler = push_signal_frame(process, user, request);
    if (handler) set_fxsave(vcpu, handler->fxsave);
    return handler;
}

ExitAction LinuxProgram::Impl::no_frame(unsigned index, int sig, std::uint64_t sp) {
    return end({LinuxProgramExit::Kind::killed, 0, SIGSEGV,
                fmt::format("killed by SIGSEGV: no signal frame for SIG{} could be written "
                            "below sp {:#x} (or its action has no restorer)",
                            sigabbrev_np(sig), sp)},
               index);
}

ExitAction LinuxProgram::Impl::deliver_signal(const KvmVcpu& vcpu, unsigned index, int tid,
                                              kvm_regs& regs, bool at_entry) {
    // One load when nothing is pending: this is every system call's way back.
    auto outcome = process_calls.signals_pending() ? process_calls.next_signal(tid) : std::nullopt;
    if (outcome && outcome->end) {
        const SyscallResult& r = *outcome->end;
        return end({LinuxProgramExit::Kind::killed, 0, r.status, r.message}, index);
    }
    if (!outcome || !outcome->handler) {
        vcpu.set_regs(regs);
        return ExitAction::resume;
    }
    UserRegisters user = user_registers(regs);
    if (at_entry) { // as `syscall` left them
        user.rip = regs.rcx;
        user.rflags = regs.r11;
    }
    auto handler = write_frame(vcpu, user, *outcome->handler);
    if (!handler) return no_frame(index, outcome->handler->sig, user.rsp);
    if (at_entry) {
        // Back through the entry's sysretq, which takes RIP and RFLAGS from
        // rcx and r11 (a handler assumes neither).
        const std::uint64_t entry_rip = P::kSyscallExitRip, entry_flags = regs.rflags;
        set_user_registers(regs, *handler);
        regs.rcx = handler->rip;
        regs.r11 = handler->rflags;
        regs.rip = entry_rip;
        regs.rflags = entry_flags;
    } else {
        set_user_registers(regs, *handler);
    }
    vcpu.set_regs(regs);
    return ExitAction::resume;
}

ExitAction LinuxProgram::Impl::sigreturn(const KvmVcpu& vcpu, unsigned index, int tid,
                                         kvm_regs& regs) {
    // At the entry: the user RSP is as the restorer left it, RFLAGS in r11.
    auto frame = read_signal_frame(process, regs.rsp, regs.r11);
    if (!frame)
        return end({LinuxProgramExit::Kind::killed, 0, SIGSEGV,
                    fmt::format("killed by SIGSEGV: rt_sigreturn with no valid signal frame at "
                                "sp {:#x}",
                                regs.rsp)},
                   index);
    process_calls.restore_after_handler(tid, frame->blocked, frame->altstack, frame->regs.rsp);
    set_fxsave(vcpu, frame->regs.fxsave);
    const UserRegisters& u = frame->regs;
    if (u.rcx == u.rip && u.r11 == u.rflags) {
        // What a signal taken at a system call saved: sysretq restores it
        // exactly.
        const std::uint64_t entry_flags = regs.rflags;
        set_user_registers(regs, u);
        regs.rip = P::kSyscallExitRip;
        regs.rflags = entry_flags;
        return deliver_signal(vcpu, index, tid, regs, true);
    }
    // Interrupted anywhere else, every register counts, rcx and r11 too:
    // straight to user mode with the program's segments (no ring-0 code
    // runs: iretq would be one more instruction for a shadow-paging KVM to
    // emulate, and the segments are the ones the thread started with).
    vcpu.set_sregs(user_mode_sregs(vcpu.sregs(), index, process.cr3()));
    set_user_registers(regs, u);
    return deliver_signal(vcpu, index, tid, regs, false);
}

std::optional<unsigned> LinuxProgram::Impl::vcpu_of(int tid) const {
    std::lock_guard lock(thread_mutex);
    for (unsigned i = 0; i < vcpu_tids.size(); ++i)
        if (vcpu_tids[i] == tid) return i;
    return std::nullopt;
}

void LinuxProgram::Impl::interrupted(unsigned index, const KvmVcpu& vcpu) {
    const int tid = tid_of(index);
    if (tid == 0 || !process_calls.signals_pending()) return;
    kvm_regs regs = vcpu.regs();
    const bool at_entry = regs.rip == P::kSyscallEntry || regs.rip == P::kSyscallExitRip;
    // In an exception stub, the report comes first (and decides).
    if (!at_entry && regs.rip >= P::kSupervisorStart && regs.rip < P::kSupervisorEnd) return;
    if (at_entry) regs.rip = P::kSyscallExitRip; // KVM then does not advance it again
    deliver_signal(vcpu, index, tid, regs, at_entry);
}

ExitAction LinuxProgram::Impl::exception(const IoAccess& access) {
    // The stub pushed the vector (and a 0 error code where the CPU pushes
    // none) on top of the CPU's frame: vector, error, rip, cs, rflags, rsp, ss.
    kvm_regs regs = access.vcpu.regs();
    kvm_sregs sregs = access.vcpu.sregs();
    std::uint64_t frame[7];
    auto bytes = memory.boot_ram().range(regs.rsp, sizeof frame);
    if (!bytes || sregs.cs.dpl != 0)
        return end(
            {LinuxProgramExit::Kind::vmm_error, 0, 0,
             fmt::format("exception report with a corrupt ring-0 stack (rsp={:#x})", regs.rsp)},
            access.vcpu_index);
    std::memcpy(frame, bytes->data(), sizeof frame);
    const auto vector = static_cast<unsigned>(frame[0] & 0xff);
    const std::uint64_t error = frame[1], rip = frame[2], cs = frame[3], rsp = frame[5];
    if ((cs & 3) != 3)
        return end({LinuxProgramExit::Kind::vmm_error, 0, 0,
                    fmt::format("exception {} in the VMM's ring-0 code at rip {:#x} (error "
                                "{:#x}, cr2 {:#x})",
                                exception_mnemonic(vector), rip, error, sregs.cr2)},
                   access.vcpu_index);
    auto [signal, what] = signal_for(vector);
    std::string where;
    if (vector == 14) // arch/x86/mm/fault.c's error code: P, W/R, U/S, RSVD, I/D
        where = fmt::format(" {} {:#x} ({})",
                            (error & 16)  ? "executing"
                            : (error & 2) ? "writing"
                                          : "reading",
                            sregs.cr2, (error & 1) ? "not permitted" : "not mapped");
    std::string message =
        fmt::format("killed by SIG{} ({} {}):{} at ip {:#x} sp {:#x}", sigabbrev_np(signal), what,
                    exception_mnemonic(vector), where, rip, rsp);
    const int tid = tid_of(access.vcpu_index);
    auto outcome = process_calls.fault_signal(
        tid, fault_info(signal, vector, error, rip, sregs.cr2), std::move(message));
    if (outcome.end)
        return end({LinuxProgramExit::Kind::killed, 0, signal, outcome.end->message},
                   access.vcpu_index);
    if (!outcome.handler) // cannot be: a fault is never ignored
        return end({LinuxProgramExit::Kind::vmm_error, 0, 0, "a fault's signal went nowhere"},
                   access.vcpu_index);
    // The program's handler: the stub changed no general register, and the
    // CPU's frame holds RIP, RFLAGS and RSP. Back to user mode directly,
    // with the program's segments.
    UserRegisters user = user_registers(regs);
    user.rip = rip;
    user.rflags = frame[4];
    user.rsp = rsp;
    user.trapno = vector;
    user.err = error;
    user.cr2 = vector == 14 ? sregs.cr2 : 0;
    auto handler = write_frame(access.vcpu, user, *outcome.handler);
    if (!handler) return no_frame(access.vcpu_index, signal, rsp);
    access.vcpu.set_sregs(user_mode_sregs(sregs, access.vcpu_index, process.cr3()));
    set_user_registers(regs, *handler);
    access.vcpu.set_regs(regs);
    return ExitAction::resume;
}

LinuxProgramExit LinuxProgram::Impl::wait() {
    // SIGINT/SIGTERM arrive on a signalfd: blocked in this thread before the
    // vCPU thread starts, so that it inherits the mask and never takes them.
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    UniqueFd signals;
    if (config.handle_signals) {
        pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
        signals.reset(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!signals) throw SystemError("signalfd", errno);
    }
    using clock = std::chrono::steady_clock;
    const auto deadline =
        config.timeout ? std::optional(clock::now() + *config.timeout) : std::nullopt;
    vcpus.start();
    try {
        watch(signals, deadline);
    } catch (...) {
        // The vCPU thread must not outlive this object's parts.
        vcpus.request_stop({VmExit::Kind::vmm_error, 0, -1, "the VMM's main thread failed"});
        vcpus.join();
        if (config.handle_signals) pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
        throw;
    }
    vcpus.join();
    if (config.handle_signals) pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    std::lock_guard lock(end_mutex);
    if (outcome) return *outcome;
    // Stopped for a reason of the VMM's own: a failed ioctl, a triple fault
    // or an entry failure, none of which the program can cause.
    VmExit why = vcpus.result();
    return {LinuxProgramExit::Kind::vmm_error, 0, 0, why.message};
}

void LinuxProgram::Impl::watch(const UniqueFd& signals,
                               std::optional<std::chrono::steady_clock::time_point> deadline) {
    using clock = std::chrono::steady_clock;
    while (!vcpus.stopping()) {
        // Every kVdsoUpdateInterval the clock page is republished; in between
        // this thread sleeps until the vCPUs stop, a signal or the deadline.
        // So does the program's interval timer, which this thread fires
        // (steady_clock is CLOCK_MONOTONIC, the timer's clock).
        auto wake = clock::now() + kVdsoUpdateInterval;
        if (deadline && *deadline < wake) wake = *deadline;
        if (auto timer_ns = process_calls.next_timer_ns()) {
            const clock::time_point at{std::chrono::nanoseconds(*timer_ns)};
            if (at < wake) wake = at;
        }
        auto us = std::chrono::ceil<std::chrono::microseconds>(wake - clock::now()).count();
        pollfd fds[3] = {{stopped_event.get(), POLLIN, 0},
                         {timer_event.get(), POLLIN, 0},
                         {signals.get(), POLLIN, 0}};
        const timespec timeout{std::max<long long>(us, 0) / 1'000'000,
                               (std::max<long long>(us, 0) % 1'000'000) * 1000};
        int n = ::ppoll(fds, signals ? 3 : 2, &timeout, nullptr);
        if (n < 0 && errno != EINTR) throw SystemError("ppoll", errno);
        if (fds[1].revents & POLLIN) {
            std::uint64_t count;
            [[maybe_unused]] auto r = ::read(timer_event.get(), &count, sizeof count);
        }
        process_calls.fire_timers(
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
                .count());
        if (signals && (fds[2].revents & POLLIN)) {
            signalfd_siginfo info{};
            if (::read(signals.get(), &info, sizeof info) == sizeof info) {
                int sig = static_cast<int>(info.ssi_signo);
                std::lock_guard lock(end_mutex);
                if (!outcome)
                    outcome = LinuxProgramExit{LinuxProgramExit::Kind::stopped, 0, sig,
                                               fmt::format("stopped by SIG{}", sigabbrev_np(sig))};
                vcpus.request_stop({VmExit::Kind::signal, sig, -1, "stopped by a signal"});
            }
        }
        if (deadline && clock::now() >= *deadline && !vcpus.stopping()) {
            auto limit = std::chrono::duration<double>(*config.timeout).count();
            std::lock_guard lock(end_mutex);
            if (!outcome)
                outcome = LinuxProgramExit{
                    LinuxProgramExit::Kind::timeout, 0, 0,
                    fmt::format("still running after the {:.3f} s time limit", limit)};
            vcpus.request_stop({VmExit::Kind::timeout, 0, -1, "time limit"});
        }
        if (!vcpus.stopping()) vdso->update();
    }
}

LinuxProgram::LinuxProgram(const KvmSystem& kvm, LinuxProgramConfig config)
    : impl_(std::make_unique<Impl>(kvm, std::move(config))) {}

LinuxProgram::~LinuxProgram() = default;

LinuxProgramExit LinuxProgram::run() {
    if (impl_->ran) throw ConfigError("LinuxProgram::run may be called only once");
    impl_->ran = true;
    return impl_->wait();
}

LinuxProgram::Stats LinuxProgram::stats() const {
    return {impl_->syscalls.load(), impl_->flushes.load(), impl_->vcpus.exit_counts()};
}

} // namespace minivmm
