// Fuzz target: the Linux personality's system call dispatcher (src/program/
// syscall_dispatcher.*) over the real file calls, under a FileSandbox rooted
// in a fresh temporary directory, and the process calls, with a memory hook
// that serves nothing. The input is a guest memory hole, then guest memory
// writes and system calls with any number and arguments (README.md).
//
// Nothing may block or reach the host beyond the sandbox's directory: the
// guest has no fds 0-2 (the VMM's stdio is not adopted), pipe and pipe2 are
// not made (an empty pipe's read would block), a call naming an absolute
// path or one with ".." is not made (the sandbox lets a program read the
// whole host tree), and the sleeper says "stopping" at once, so sleeps end
// with EINTR. Exits, signals and deadlocks are only results.
//
// Invariants: every result is a value or -errno (1..4095); a number nobody
// serves is -ENOSYS with at most one warning per number; an outcome that
// ends the program has a status in range and, for a signal, a one-line
// message; a read-only hole is never written; the counters add up.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "program/file_sandbox.hpp"
#include "program/file_syscalls.hpp"
#include "program/file_table.hpp"
#include "program/process_calls.hpp"
#include "program/syscall_dispatcher.hpp"
#include "program/user_memory.hpp"
#include "testing/flat_user_memory.hpp"

using namespace minivmm;
using namespace minivmm::linux_abi;
using minivmm::fuzz::Reader;

namespace {

constexpr std::uint64_t kBase = 0x10000;
constexpr std::size_t kMemory = 64 * 1024;

class FuzzThread final : public ThreadContext {
  public:
    std::uint64_t fs_base() const override { return fs; }
    void set_fs_base(std::uint64_t base) override { fs = base; }
    std::uint64_t gs_base() const override { return gs; }
    void set_gs_base(std::uint64_t base) override { gs = base; }
    int tid() const override { return 1; }
    std::uint64_t stack_pointer() const override { return rsp; }
    std::uint64_t fs = 0, gs = 0, rsp = kBase + kMemory - 256;
};

// A fresh directory for one input, removed with everything in it.
struct ScratchDir {
    std::filesystem::path path;
    ScratchDir() {
        std::string templ =
            (std::filesystem::temp_directory_path() / "minivmm-fuzz-XXXXXX").string();
        if (!::mkdtemp(templ.data())) std::abort();
        path = templ;
    }
    ~ScratchDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// The path arguments of the file calls (by argument index).
std::vector<int> path_args(std::uint64_t nr) {
    switch (nr) {
    case __NR_open:
    case __NR_creat:
    case __NR_stat:
    case __NR_lstat:
    case __NR_access:
    case __NR_unlink:
    case __NR_rmdir:
    case __NR_mkdir:
    case __NR_readlink:
    case __NR_chdir:
        return {0};
    case __NR_rename:
        return {0, 1};
    case __NR_openat:
    case __NR_newfstatat:
    case __NR_unlinkat:
    case __NR_mkdirat:
    case __NR_readlinkat:
    case __NR_faccessat:
    case __NR_faccessat2:
    case __NR_statx:
        return {1};
    case __NR_renameat:
    case __NR_renameat2:
        return {1, 3};
    default:
        return {};
    }
}

// Whether the call could block or look beyond the scratch directory.
bool must_skip(const SyscallArgs& args, const UserMemory& mem) {
    const auto nr = static_cast<std::uint32_t>(args.nr); // as the dispatcher reads it
    if (nr == __NR_pipe || nr == __NR_pipe2) return true;
    for (int i : path_args(nr)) {
        int error = 0;
        auto path = read_string(mem, args.a[i], 4096, error);
        if (path && (path->starts_with('/') || path->find("..") != std::string::npos)) return true;
    }
    return false;
}

// An argument: raw, a pointer into the memory, a small signed number, or a
// pointer just below the memory's end.
std::uint64_t take_arg(Reader& in) {
    const std::uint8_t kind = in.take<std::uint8_t>();
    switch (kind % 4) {
    case 1:
        return kBase + in.take<std::uint16_t>() % kMemory;
    case 2:
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(in.take<std::int8_t>()));
    case 3:
        return kBase + kMemory - in.take<std::uint8_t>();
    default:
        return in.take<std::uint64_t>();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool trace = std::getenv("MINIVMM_FUZZ_TRACE") != nullptr;
    Reader in(std::span(data, size));
    ScratchDir dir;
    FlatUserMemory mem(kBase, kMemory);
    const std::uint64_t hole_at = kBase + in.take<std::uint16_t>() % kMemory;
    const std::size_t hole_size = in.take<std::uint16_t>() % 8192;
    const auto access = (in.take<std::uint8_t>() & 1) ? FlatUserMemory::Access::read_only
                                                      : FlatUserMemory::Access::unmapped;
    mem.set_hole(hole_at, hole_size, access);
    const std::uint64_t ro_end = std::min<std::uint64_t>(hole_at + hole_size, kBase + kMemory);

    FileTable files(64); // fds 0-2 closed: nothing reads the VMM's stdin
    FileSandbox sandbox(dir.path.string());
    FileSystemCalls file_calls(files, sandbox, mem);
    ProcessCalls::Options options;
    options.uid = 1000;
    options.gid = 1000;
    options.cpus = 2;
    options.sleeper = [](std::chrono::nanoseconds) { return false; };
    options.memory = [] { return MemoryFigures{64 << 20, 32 << 20, 8 << 20}; };
    ProcessCalls process(options, mem, files);
    std::set<std::string> warnings;
    std::set<std::uint64_t> unserved;
    SyscallDispatcher dispatcher(
        file_calls, process, [](const SyscallArgs&) { return std::optional<std::int64_t>{}; },
        [&](const std::string& line) {
            MINIVMM_FUZZ_CHECK(warnings.insert(line).second); // once per number
        });
    FuzzThread thread;

    std::uint64_t dispatched = 0;
    for (int step = 0; step < 64 && !in.empty(); ++step) {
        const std::uint8_t tag = in.take<std::uint8_t>();
        if (tag % 4 == 0) { // the program writes its memory
            const std::uint64_t at = in.take<std::uint16_t>() % kMemory;
            auto bytes = in.take_bytes(in.take<std::uint8_t>());
            bytes = bytes.first(std::min<std::size_t>(bytes.size(), kMemory - at));
            mem.put(kBase + at, std::as_bytes(bytes));
            continue;
        }
        SyscallArgs args;
        const std::uint16_t nr = in.take<std::uint16_t>();
        args.nr = nr >= 0xff00 ? in.take<std::uint64_t>() : nr % 512;
        for (std::uint64_t& a : args.a)
            a = take_arg(in);
        if (must_skip(args, mem)) continue;

        std::vector<std::byte> read_only;
        if (access == FlatUserMemory::Access::read_only && hole_at < ro_end) {
            auto bytes = mem.bytes(hole_at, static_cast<std::size_t>(ro_end - hole_at));
            read_only.assign(bytes.begin(), bytes.end());
        }
        if (trace)
            std::fprintf(stderr, "fuzz: syscall %#llx (%llx, %llx, %llx, %llx, %llx, %llx)\n",
                         static_cast<unsigned long long>(args.nr),
                         static_cast<unsigned long long>(args.a[0]),
                         static_cast<unsigned long long>(args.a[1]),
                         static_cast<unsigned long long>(args.a[2]),
                         static_cast<unsigned long long>(args.a[3]),
                         static_cast<unsigned long long>(args.a[4]),
                         static_cast<unsigned long long>(args.a[5]));
        const std::size_t warned_before = warnings.size();
        const SyscallResult r = dispatcher.dispatch(args, thread);
        ++dispatched;
        if (trace)
            std::fprintf(stderr, "fuzz: -> %lld then %d status %d %s\n",
                         static_cast<long long>(r.value), static_cast<int>(r.then), r.status,
                         r.message.c_str());

        switch (r.then) {
        case SyscallResult::Then::resume:
            MINIVMM_FUZZ_CHECK(r.value >= -4095);
            break;
        case SyscallResult::Then::exit_thread:
        case SyscallResult::Then::exit_process:
            MINIVMM_FUZZ_CHECK(r.status >= 0 && r.status <= 255);
            break;
        case SyscallResult::Then::sigreturn:
            // The runner reads the frame: here, the reader over the same
            // fuzzed memory, at the fuzzed stack pointer.
            MINIVMM_FUZZ_CHECK(args.nr == SYS_rt_sigreturn);
            if (auto frame = minivmm::linux_abi::read_signal_frame(mem, args.a[0], 0x202))
                MINIVMM_FUZZ_CHECK(frame->regs.rip < (std::uint64_t{1} << 47));
            break;
        case SyscallResult::Then::killed_by_signal:
            MINIVMM_FUZZ_CHECK(r.status >= 1 && r.status <= 64);
            MINIVMM_FUZZ_CHECK(!r.message.empty());
            MINIVMM_FUZZ_CHECK(r.message.find('\n') == std::string::npos);
            break;
        }
        const auto eax = static_cast<std::uint32_t>(args.nr);
        if (warnings.size() > warned_before) {
            // A warning comes with ENOSYS, once per number.
            MINIVMM_FUZZ_CHECK(r.then == SyscallResult::Then::resume && r.value == -ENOSYS);
            MINIVMM_FUZZ_CHECK(unserved.insert(eax).second);
        } else if (unserved.count(eax)) {
            MINIVMM_FUZZ_CHECK(r.value == -ENOSYS);
        }
        if (!read_only.empty()) {
            auto now = mem.bytes(hole_at, read_only.size());
            MINIVMM_FUZZ_CHECK(std::equal(now.begin(), now.end(), read_only.begin()));
        }
    }
    std::uint64_t counted = 0;
    for (const auto& c : dispatcher.counts())
        counted += c.count;
    MINIVMM_FUZZ_CHECK(counted == dispatched);
    return 0;
}
