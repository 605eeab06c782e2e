#include "devices/hypercalls.hpp"

#include <sched.h>

#include <cstring>

#include <fmt/format.h>

#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/hypercall.hpp"
#include "minivmm/kvm.hpp"

namespace minivmm {

namespace {

// The argument blocks, as guests lay them out (minivmm/abi/hypercall.h).
using WriteArgs = ::mvg_hc_write;
using ExitArgs = ::mvg_hc_exit;
using MemMapArgs = ::mvg_hc_mem_map;
using MemMapEntry = ::mvg_mem_region;
using MemClaimArgs = ::mvg_hc_mem_claim;

const char* hypercall_name(std::uint64_t nr) {
    switch (static_cast<Hypercall>(nr)) {
    case Hypercall::write:
        return "write";
    case Hypercall::exit:
        return "exit";
    case Hypercall::halt:
        return "halt";
    case Hypercall::yield:
        return "yield";
    case Hypercall::mem_map:
        return "mem_map";
    case Hypercall::mem_claim:
        return "mem_claim";
    }
    return "unknown";
}

} // namespace

ExitAction HypercallDevice::fail(const IoAccess& access, std::string why) {
    host_.request_stop({VmExit::Kind::guest_fault, 0, static_cast<int>(access.vcpu_index),
                        fmt::format("bad hypercall {} ({}) on vcpu {}: {}", access.offset,
                                    hypercall_name(access.offset), access.vcpu_index, why)});
    return ExitAction::stop;
}

ExitAction HypercallDevice::access(const IoAccess& access) {
    if (!access.is_write || access.data.size() != 4)
        return fail(access, "a hypercall is a 32-bit OUT (outl) of the argument block's address");
    std::uint32_t block_gpa = 0;
    std::memcpy(&block_gpa, access.data.data(), sizeof block_gpa);

    // Each block, and each buffer it names, is checked against guest RAM
    // before the VMM touches it (guest ABI, Hypercalls).
    auto outside = [&](std::uint64_t addr, std::uint64_t len, const char* what) {
        return fmt::format("{} [{:#x}, +{:#x}) is outside guest RAM ({:#x} bytes)", what, addr, len,
                           mem_.size());
    };
    switch (static_cast<Hypercall>(access.offset)) {
    case Hypercall::write: {
        auto args = mem_.read<WriteArgs>(block_gpa);
        if (!args) return fail(access, outside(block_gpa, sizeof(WriteArgs), "argument block"));
        auto buf = mem_.range(args->buf, args->len);
        if (!buf) return fail(access, outside(args->buf, args->len, "buffer"));
        if (!buf->empty()) console_.write(*buf);
        return ExitAction::resume;
    }
    case Hypercall::exit: {
        auto args = mem_.read<ExitArgs>(block_gpa);
        if (!args) return fail(access, outside(block_gpa, sizeof(ExitArgs), "argument block"));
        host_.request_stop({VmExit::Kind::guest_exit,
                            static_cast<int>(args->code & 0xff),
                            static_cast<int>(access.vcpu_index),
                            {}});
        return ExitAction::stop;
    }
    case Hypercall::halt:
        if (!mem_.contains(block_gpa, sizeof(std::uint64_t)))
            return fail(access, outside(block_gpa, sizeof(std::uint64_t), "argument block"));
        return ExitAction::park;
    case Hypercall::yield:
        // What a paravirtual guest kernel's "yield to the host" does: the
        // vCPU thread gives its CPU back to the host scheduler, then resumes.
        if (!mem_.contains(block_gpa, sizeof(std::uint64_t)))
            return fail(access, outside(block_gpa, sizeof(std::uint64_t), "argument block"));
        ::sched_yield();
        return ExitAction::resume;
    case Hypercall::mem_map:
        if (hotplug_ != nullptr) return mem_map(access, block_gpa);
        break;
    case Hypercall::mem_claim:
        if (hotplug_ != nullptr) return mem_claim(access, block_gpa);
        break;
    }
    return fail(access, fmt::format("no such hypercall (port {:#x})", access.address));
}

// Hypercalls 22 and 23 read their block, answer in it and mark it: all
// through one span taken once. Asking the address space again for each step
// let an overlay that appears in between make the read come back empty or
// the answer be skipped while the guest resumed.
template <typename T>
std::optional<std::span<std::byte>> HypercallDevice::writable_block(std::uint64_t gpa,
                                                                    T& value) const {
    if (gpa < layout::kReservedEnd) return std::nullopt;
    auto span = mem_.writable_range(gpa, sizeof(T));
    if (span) std::memcpy(&value, span->data(), sizeof(T));
    return span;
}

template <typename T>
void HypercallDevice::answer(std::span<std::byte> bytes, std::uint64_t gpa, const T& value) const {
    std::memcpy(bytes.data(), &value, sizeof(T));
    mem_.mark_written(gpa, sizeof(T)); // after the store: a sync never sees the bit first
}

// Hypercall 22: up to `cap` entries at `buf`, then the count of regions and
// the generation (it changes with every add or remove), in the block.
ExitAction HypercallDevice::mem_map(const IoAccess& access, std::uint32_t block_gpa) {
    MemMapArgs args;
    auto span = writable_block(block_gpa, args);
    // The whole block is written back: it must be writable guest RAM.
    if (!span)
        return fail(access, fmt::format("argument block [{:#x}, +{:#x}) is not writable guest RAM",
                                        block_gpa, sizeof(MemMapArgs)));
    // One snapshot: a list and a generation from different moments could
    // pair the old list with the new generation, which the guest then trusts.
    const auto [regions, generation] = hotplug_->snapshot();
    // cap * 24 must not overflow, and the buffer must be writable guest RAM.
    if (args.cap > mem_.size() / sizeof(MemMapEntry))
        return fail(access, fmt::format("cap {} entries is larger than guest RAM", args.cap));
    const std::uint64_t bytes = args.cap * sizeof(MemMapEntry);
    auto buf =
        args.buf < layout::kReservedEnd ? std::nullopt : mem_.writable_range(args.buf, bytes);
    if (bytes != 0 && !buf)
        return fail(access, fmt::format("buffer [{:#x}, +{:#x}) is not writable guest RAM",
                                        args.buf, bytes));
    const std::uint64_t n = std::min<std::uint64_t>(regions.size(), args.cap);
    for (std::uint64_t i = 0; i < n; ++i) {
        const MemMapEntry e{regions[i].gpa, regions[i].size,
                            regions[i].claimed ? MVG_MEM_REGION_CLAIMED : 0};
        std::memcpy(buf->data() + i * sizeof e, &e, sizeof e);
    }
    if (n != 0) mem_.mark_written(args.buf, n * sizeof(MemMapEntry));
    args.count = regions.size();
    args.generation = generation;
    answer(*span, block_gpa, args);
    return ExitAction::resume;
}

// Hypercall 23: status 0 done, 1 no hot-added region starts at gpa, 2 claim
// is neither 0 nor 1.
ExitAction HypercallDevice::mem_claim(const IoAccess& access, std::uint32_t block_gpa) {
    MemClaimArgs args;
    auto span = writable_block(block_gpa, args);
    if (!span)
        return fail(access, fmt::format("argument block [{:#x}, +{:#x}) is not writable guest RAM",
                                        block_gpa, sizeof(MemClaimArgs)));
    args.status =
        args.claim > 1 ? MVG_MEM_CLAIM_BAD_VALUE : hotplug_->claim(args.gpa, args.claim == 1);
    answer(*span, block_gpa, args);
    return ExitAction::resume;
}

ExitAction ExceptionReportDevice::access(const IoAccess& access) {
    auto fault = [&](std::string message) {
        host_.request_stop({VmExit::Kind::guest_fault, 0, static_cast<int>(access.vcpu_index),
                            std::move(message)});
        return ExitAction::stop;
    };
    kvm_sregs sregs = access.vcpu.sregs();
    // Only the VMM's stubs run at CPL 0; from ring 3 this port is just off limits.
    if (sregs.cs.dpl != 0)
        return fault(fmt::format("vcpu {}: port {:#x} is reserved for the VMM", access.vcpu_index,
                                 access.address));
    // The stub pushed the vector (and a 0 error code where the CPU pushes
    // none) on top of the CPU's frame: vector, error, rip, cs, rflags, rsp, ss.
    kvm_regs regs = access.vcpu.regs();
    std::uint64_t frame[7];
    auto bytes = mem_.range(regs.rsp, sizeof frame);
    if (!bytes)
        return fault(fmt::format("vcpu {}: guest exception with a corrupt ring-0 stack (rsp={:#x})",
                                 access.vcpu_index, regs.rsp));
    std::memcpy(frame, bytes->data(), sizeof frame);
    auto vector = static_cast<unsigned>(frame[0] & 0xff);
    std::string cr2 = vector == 14 ? fmt::format(" cr2={:#x}", sregs.cr2) : std::string();
    return fault(fmt::format("guest exception {} ({}) on vcpu {}: rip={:#x} error={:#x}{}",
                             exception_mnemonic(vector), vector, access.vcpu_index, frame[2],
                             frame[1], cr2));
}

} // namespace minivmm
