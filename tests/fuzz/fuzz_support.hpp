// Shared pieces of the fuzz targets (tests/fuzz/README.md): a little-endian
// reader over the fuzz input, guest RAM with guard reservations around it,
// the guest-write and hypercall operations the input encodes, and the
// invariants every device answer must keep. Header-only: each target is one
// translation unit plus libFuzzer (or replay_main.cpp without clang).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "minivmm/boot_ram.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm_exit.hpp"
#include "vcpu/vcpu_host.hpp"

#include "../fake_vcpu_host.hpp"

namespace minivmm::fuzz {

// An invariant broken: abort, which libFuzzer reports as a crash with the input.
[[noreturn]] inline void invariant_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
    std::abort();
}
#define MINIVMM_FUZZ_CHECK(cond)                                                                   \
    do {                                                                                           \
        if (!(cond)) ::minivmm::fuzz::invariant_failed(#cond, __FILE__, __LINE__);                 \
    } while (0)

// Reads the input front to back; past its end every value reads as zero, so
// any prefix of a valid input is still a valid (shorter) input.
class Reader {
  public:
    explicit Reader(std::span<const std::uint8_t> data) noexcept : data_(data) {}
    bool empty() const noexcept { return data_.empty(); }
    template <typename T>
    T take() noexcept {
        T value{};
        const std::size_t n = std::min(sizeof(T), data_.size());
        std::memcpy(&value, data_.data(), n);
        data_ = data_.subspan(n);
        return value;
    }
    std::span<const std::uint8_t> take_bytes(std::size_t n) noexcept {
        n = std::min(n, data_.size());
        auto out = data_.first(n);
        data_ = data_.subspan(n);
        return out;
    }

  private:
    std::span<const std::uint8_t> data_;
};

// Guest RAM whose mapping sits between PROT_NONE reservations (1 MiB below,
// 4 GiB + 1 MiB above): ASan does not watch mmap'd memory, so an access the
// bounds checks should have refused, even one a wrapped 32-bit address away,
// faults here instead of silently reading a neighbouring mapping.
class GuardedMemory {
  public:
    static constexpr std::uint64_t kBelow = 1ull << 20;
    static constexpr std::uint64_t kAbove = (4ull << 30) + (1ull << 20);
    static constexpr std::uint64_t kAlign = 2ull << 20; // RamBlock's mapping alignment

    explicit GuardedMemory(std::uint64_t size) {
        // RamBlock reserves size + 2 MiB (the kernel may look for 2 MiB more,
        // to align it) in the highest gap that fits, and keeps a 2 MiB-aligned
        // window of it. So: reserve guard + hole + guard, free a hole of size
        // + 4 MiB, let the block map into it, and guard again what it left
        // free around itself. Retry a few times, keeping misplaced blocks
        // alive so that they fill the gaps that won.
        const std::uint64_t hole = size + 2 * kAlign, total = kBelow + kAlign + hole + kAbove;
        std::vector<std::unique_ptr<BootRam>> misplaced;
        for (int attempt = 0; attempt < 16 && !mem_; ++attempt) {
            void* r = ::mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                             -1, 0);
            if (r == MAP_FAILED) break;
            auto* base = static_cast<std::byte*>(r);
            const auto a =
                (reinterpret_cast<std::uintptr_t>(base) + kBelow + kAlign - 1) & ~(kAlign - 1);
            auto* lo = reinterpret_cast<std::byte*>(a);
            auto* hi = lo + hole;
            ::munmap(lo, hole);
            auto mem = std::make_unique<BootRam>(size);
            std::byte* at = mem->host_base();
            if (at >= lo && at + size <= hi && fill(lo, at) && fill(at + size, hi)) {
                reservation_ = base;
                total_ = total;
                mem_ = std::move(mem);
            } else {
                // Give the reservation back, all but the block if it is inside.
                if (at >= base && at < base + total) {
                    ::munmap(base, static_cast<std::size_t>(at - base));
                    ::munmap(at + size, static_cast<std::size_t>(base + total - (at + size)));
                } else {
                    ::munmap(base, total);
                }
                misplaced.push_back(std::move(mem));
            }
        }
        if (!mem_) {
            std::fprintf(stderr, "fuzz: guest RAM without guard pages (no suitable gap)\n");
            mem_ = std::make_unique<BootRam>(size);
        }
    }
    ~GuardedMemory() {
        if (!reservation_) return;
        std::byte* at = mem_->host_base();
        const std::uint64_t size = mem_->size();
        mem_.reset();
        ::munmap(reservation_, static_cast<std::size_t>(at - reservation_));
        ::munmap(at + size, static_cast<std::size_t>(reservation_ + total_ - (at + size)));
    }
    GuardedMemory(const GuardedMemory&) = delete;
    GuardedMemory& operator=(const GuardedMemory&) = delete;

    BootRam& mem() noexcept { return *mem_; }
    std::uint64_t size() const noexcept { return mem_->size(); }
    std::byte* host() const noexcept { return mem_->host_base(); }
    bool guarded() const noexcept { return reservation_ != nullptr; }
    void clear() noexcept { std::memset(host(), 0, size()); }
    // The VMM's own writes since the last call (BootRam::mark_written
    // marks them; the input's pokes bypass it) never touch the reserved MiB.
    void check_reserved_untouched() {
        for (std::uint64_t page : mem_->block()->dirty().take())
            MINIVMM_FUZZ_CHECK(page >= 0x100000 / DirtyBitmap::kPageSize);
    }

  private:
    // Maps [from, to) PROT_NONE unless something is already there.
    static bool fill(std::byte* from, std::byte* to) noexcept {
        if (from == to) return true;
        const auto len = static_cast<std::size_t>(to - from);
        void* p = ::mmap(from, len, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == from) return true;
        if (p != MAP_FAILED) ::munmap(p, len);
        return false;
    }

    std::unique_ptr<BootRam> mem_;
    std::byte* reservation_ = nullptr;
    std::uint64_t total_ = 0;
};

// The argument block the VMM wrote back (the fuzz input put it in RAM, so
// it must still read).
template <typename T>
T read_back(GuardedMemory& ram, std::uint32_t block) {
    auto v = ram.mem().read<T>(block);
    MINIVMM_FUZZ_CHECK(v);
    return *v;
}

using test::FakeVcpuHost; // tests/fake_vcpu_host.hpp

// An address the input gives relative to an anchor, so that values just
// below RAM's end, 4 GiB or 2^64 (wrapping sums) are one mutation away.
inline std::uint64_t anchored(std::uint8_t anchor, std::uint64_t v, std::uint64_t ram) noexcept {
    switch (anchor % 4) {
    case 1:
        return ram - v;
    case 2:
        return (1ull << 32) - v;
    case 3:
        return 0 - v;
    default:
        return v;
    }
}

// A guest-physical offset into RAM: bit 31 counts back from RAM's end.
inline std::uint64_t ram_offset(std::uint32_t raw, std::uint64_t ram) noexcept {
    const std::uint64_t off = (raw & 0x7fffffffu) % ram;
    return (raw & 0x80000000u) ? ram - 1 - off : off;
}

// The operations an input is made of, each starting with a tag byte:
//   0 poke:   u32 where, u16 len, len bytes   the guest writes bytes
//   1 poke64: u32 where, u8 anchor, u64 v     the guest writes anchored(v)
//   2 call:   u8 nr, u8 how, u32 block        an OUT to hypercall port 0x500 + nr;
//             how bits 0-1: width 4/1/2/4, bit 2: an IN instead, bit 3:
//             block = RAM size - block
// (tags are taken mod 3). `where` is ram_offset(); writes are clipped to RAM.
struct Call {
    std::uint8_t nr;
    std::uint8_t how;
    std::uint32_t block;
};

// Applies the next poke to `ram`, or returns the next call.
inline std::optional<Call> next_op(Reader& in, GuardedMemory& ram) {
    const std::uint8_t tag = in.take<std::uint8_t>() % 3;
    if (tag == 2) {
        Call c{};
        c.nr = in.take<std::uint8_t>();
        c.how = in.take<std::uint8_t>();
        c.block = in.take<std::uint32_t>();
        if (c.how & 8) c.block = static_cast<std::uint32_t>(ram.size() - c.block);
        return c;
    }
    const std::uint64_t at = ram_offset(in.take<std::uint32_t>(), ram.size());
    if (tag == 0) {
        auto bytes = in.take_bytes(in.take<std::uint16_t>());
        std::memcpy(ram.host() + at, bytes.data(),
                    std::min<std::uint64_t>(bytes.size(), ram.size() - at));
    } else {
        const auto anchor = in.take<std::uint8_t>();
        const std::uint64_t v = anchored(anchor, in.take<std::uint64_t>(), ram.size());
        std::memcpy(ram.host() + at, &v, std::min<std::uint64_t>(sizeof v, ram.size() - at));
    }
    return std::nullopt;
}

// Performs `c` on `device` as the vCPU loop would.
inline ExitAction perform(IoDevice& device, const Call& c) {
    static const bool trace = std::getenv("MINIVMM_FUZZ_TRACE") != nullptr;
    if (trace)
        std::fprintf(stderr, "fuzz: hypercall %u (how %#x) block %#x\n", c.nr, c.how, c.block);
    // The devices never ask the vCPU for registers: an fd-less stand-in will do.
    static const KvmVcpu vcpu{UniqueFd{}, HostMapping{}, 0};
    static constexpr std::size_t kWidth[] = {4, 1, 2, 4};
    std::uint8_t data[4];
    std::memcpy(data, &c.block, sizeof data);
    IoAccess access{0,
                    vcpu,
                    0x500u + c.nr,
                    c.nr,
                    (c.how & 4) == 0,
                    std::as_writable_bytes(std::span(data, kWidth[c.how & 3]))};
    return device.access(access);
}

// What any answer to a hypercall must look like: a stop comes with a
// reason, a guest fault with a one-line message naming the hypercall; no
// other action asks for a stop.
inline void check_outcome(ExitAction action, const std::optional<VmExit>& stop) {
    // MINIVMM_FUZZ_TRACE=1: what each call did, to read a crashing input.
    static const bool trace = std::getenv("MINIVMM_FUZZ_TRACE") != nullptr;
    if (trace)
        std::fprintf(stderr, "fuzz: -> %s%s%s\n",
                     action == ExitAction::resume ? "resume"
                     : action == ExitAction::park ? "park"
                                                  : "stop",
                     stop ? ": " : "", stop ? stop->message.c_str() : "");
    if (action != ExitAction::stop) {
        MINIVMM_FUZZ_CHECK(!stop);
        return;
    }
    MINIVMM_FUZZ_CHECK(stop);
    MINIVMM_FUZZ_CHECK(stop->vcpu == 0);
    if (stop->kind == VmExit::Kind::guest_exit) return;
    MINIVMM_FUZZ_CHECK(stop->kind == VmExit::Kind::guest_fault);
    const std::string_view msg = stop->message;
    MINIVMM_FUZZ_CHECK(msg.starts_with("bad hypercall "));
    MINIVMM_FUZZ_CHECK(msg.find('\n') == std::string_view::npos);
}

} // namespace minivmm::fuzz
