#include "minivmm/boot.hpp"
#include "boot/builders.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include <fmt/format.h>

#include "minivmm/boot_info.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"

namespace minivmm {

namespace L = layout;

namespace {

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

constexpr std::uint64_t stack_slot() {
    return L::kVcpuStackSize;
}

// Page-table entry bits (Intel SDM vol. 3, 4.5).
constexpr std::uint64_t kPresent = 1u << 0, kWritable = 1u << 1, kUser = 1u << 2,
                        kAccessed = 1u << 5, kDirty = 1u << 6, kLarge = 1u << 7;
// Accessed/dirty are preset so the CPU (or a shadow-paging KVM) never needs
// to write them back into the VMM's read-only area.
constexpr std::uint64_t kTable = kPresent | kWritable | kUser | kAccessed;
constexpr std::uint64_t kRam = kPresent | kWritable | kUser | kAccessed | kDirty;
constexpr std::uint64_t kReservedRo = kPresent | kUser | kAccessed;
constexpr std::uint64_t kSupervisorRw = kPresent | kWritable | kAccessed | kDirty;

// Hands out zeroed 4 KiB pages from the page-table pool in reserved memory.
class TablePool {
  public:
    explicit TablePool(BootRam& mem) : mem_(mem) {}
    std::uint64_t alloc() {
        if (next_ + L::kPageSize > L::kPageTablesEnd)
            throw ConfigError(fmt::format("guest RAM of {} bytes needs more page tables than the "
                                          "VMM's area holds (at most {} GiB)",
                                          mem_.size(), L::kMaxMemSize >> 30));
        std::uint64_t page = next_;
        next_ += L::kPageSize;
        mem_.fill(page, L::kPageSize, std::byte{0});
        return page;
    }

  private:
    BootRam& mem_;
    std::uint64_t next_ = L::kPageTables;
};

// The leaf flags for one 4 KiB guest page (0 = not present).
std::uint64_t page_flags(std::uint64_t page) {
    if (page < L::kPageSize) return 0; // null page
    if (page >= L::kExceptionStacks && page < L::kReservedEnd) return kSupervisorRw;
    if (page < L::kReservedEnd) return kReservedRo;
    return kRam;
}

} // namespace

void BootPlan::validate(std::uint64_t mem_size, unsigned nr_vcpus) {
    if (nr_vcpus == 0) throw ConfigError("the number of vCPUs must be at least 1");
    if (nr_vcpus > L::kMaxVcpus)
        throw ConfigError(
            fmt::format("{} vCPUs requested; minivmm supports at most {}", nr_vcpus, L::kMaxVcpus));
    if (mem_size % L::kPageSize != 0)
        throw ConfigError(fmt::format("guest RAM size {} is not a multiple of 4 KiB", mem_size));
    if (mem_size > L::kMaxMemSize)
        throw ConfigError(fmt::format("guest RAM size {} is above the maximum of {} GiB", mem_size,
                                      L::kMaxMemSize >> 30));
    std::uint64_t need = L::kImageBase + L::kPageSize + nr_vcpus * stack_slot();
    if (mem_size < need)
        throw ConfigError(
            fmt::format("guest RAM of {} bytes is too small for {} vCPU stack(s) of "
                        "{} KiB above the 1 MiB reserved area (need at least {} bytes)",
                        mem_size, nr_vcpus, L::kVcpuStackSize >> 10, need));
}

std::uint64_t BootPlan::max_image_size(std::uint64_t mem_size, unsigned nr_vcpus) {
    validate(mem_size, nr_vcpus);
    return mem_size - nr_vcpus * stack_slot() - L::kImageBase;
}

BootPlan::BootPlan(std::uint64_t mem_size, unsigned nr_vcpus, const GuestImage& image)
    : mem_size_(mem_size), nr_vcpus_(nr_vcpus), entry_(image.entry) {
    validate(mem_size, nr_vcpus);
    if (image.segments.empty()) throw ImageError("image has no segments to load");
    heap_end_ = mem_size - nr_vcpus * stack_slot();
    for (const auto& seg : image.segments) {
        if (seg.gpa < L::kImageBase)
            throw ImageError(
                fmt::format("image segment at {:#x} lies in the VMM-reserved first MiB "
                            "(images load at {:#x} or above)",
                            seg.gpa, L::kImageBase));
        if (!range_within(seg.gpa, seg.mem_size, heap_end_))
            throw ImageError(fmt::format("image segment [{:#x}, {:#x}) does not fit in guest RAM: "
                                         "with {} vCPU stack(s), images must end by {:#x} "
                                         "(give the VM more RAM?)",
                                         seg.gpa, seg.gpa + seg.mem_size, nr_vcpus, heap_end_));
    }
    heap_start_ = align_up(image.end(), L::kPageSize);
}

std::uint64_t BootPlan::stack_top(unsigned vcpu) const noexcept {
    return mem_size_ - std::uint64_t{vcpu} * stack_slot();
}

std::uint64_t build_page_tables(BootRam& mem, const BootPlan& plan) {
    TablePool pool(mem);
    std::uint64_t pml4 = pool.alloc();
    std::uint64_t pdpt = pool.alloc();
    mem.write<std::uint64_t>(pml4, pdpt | kTable);

    const std::uint64_t size = plan.mem_size();
    // Every page directory up to kMaxMemSize exists from the start, empty
    // beyond RAM, so that hot-added RAM is mapped by writing directory
    // entries alone (map_hotplug_ram), with no allocation while vCPUs run.
    for (std::uint64_t gib = 0; gib < (L::kMaxMemSize >> 30); ++gib)
        mem.write<std::uint64_t>(pdpt + gib * 8, pool.alloc() | kTable);
    std::uint64_t pd = 0;
    for (std::uint64_t region = 0; region < size; region += L::kLargePageSize) {
        if (region % (1ull << 30) == 0)
            pd = *mem.read<std::uint64_t>(pdpt + (region >> 30) * 8) & ~0xfffull;
        std::uint64_t pde_addr = pd + ((region >> 21) & 511) * 8;
        // A 2 MiB page when the whole region is ordinary RAM; a page table otherwise.
        bool plain = region >= L::kReservedEnd && region + L::kLargePageSize <= size;
        if (plain) {
            mem.write<std::uint64_t>(pde_addr, region | kRam | kLarge);
            continue;
        }
        std::uint64_t pt = pool.alloc();
        mem.write<std::uint64_t>(pde_addr, pt | kTable);
        for (std::uint64_t i = 0; i < 512; ++i) {
            std::uint64_t page = region + i * L::kPageSize;
            if (page >= size) break;
            if (std::uint64_t flags = page_flags(page))
                mem.write<std::uint64_t>(pt + i * 8, page | flags);
        }
    }
    return pml4;
}

void map_hotplug_ram(BootRam& mem, std::uint64_t cr3, std::uint64_t gpa, std::uint64_t size,
                     bool present) {
    if (gpa % L::kLargePageSize != 0 || size % L::kLargePageSize != 0 || size == 0 ||
        gpa < mem.size() || gpa > L::kMaxMemSize || size > L::kMaxMemSize - gpa)
        throw ConfigError(fmt::format("cannot map [{:#x}, +{:#x}) for hot-added RAM: it must be "
                                      "2 MiB aligned, above RAM and below {:#x}",
                                      gpa, size, L::kMaxMemSize));
    // The tables live in the VMM's reserved area, which the guest cannot
    // write; still, every entry is read through the bounds-checked accessors.
    auto entry = [&](std::uint64_t table, std::uint64_t index) {
        auto e = mem.read<std::uint64_t>(table + index * 8);
        if (!e || (*e & kPresent) == 0 || (*e & kLarge) != 0 || (*e & ~0xfffull) >= L::kReservedEnd)
            throw ConfigError("the guest's page tables are not the ones build_page_tables made");
        return *e & ~0xfffull;
    };
    const std::uint64_t pdpt = entry(cr3 & ~0xfffull, 0);
    for (std::uint64_t page = gpa; page < gpa + size; page += L::kLargePageSize) {
        std::uint64_t pd = entry(pdpt, page >> 30);
        mem.write<std::uint64_t>(pd + ((page >> 21) & 511) * 8,
                                 present ? (page | kRam | kLarge) : 0);
    }
}

void build_gdt(BootRam& mem, unsigned nr_vcpus) {
    // Flat descriptors with the accessed bit preset: with CR0.WP the CPU
    // could not set it in this read-only page (guest ABI, memory map).
    const std::array<std::uint64_t, L::kGdtFixedEntries> fixed = {
        0,                     // null
        0x00af9b000000ffffull, // 0x08 kernel code: DPL 0, L=1
        0x00cf93000000ffffull, // 0x10 kernel data
        0x00cff3000000ffffull, // 0x18 user data: DPL 3
        0x00affb000000ffffull, // 0x20 user code: DPL 3, L=1
    };
    for (std::size_t i = 0; i < fixed.size(); ++i)
        mem.write(L::kGdt + i * 8, fixed[i]);
    for (unsigned v = 0; v < nr_vcpus; ++v) {
        std::uint64_t base = L::kTssArray + v * L::kTssStride;
        std::uint64_t limit = (L::kIoBitmap - base) + L::kIoBitmapSize;
        // 64-bit TSS descriptor, type 0xb (busy: TR is loaded directly, never by LTR).
        std::uint64_t lo = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x8bull << 40) |
                           (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
        std::uint64_t hi = base >> 32;
        std::uint64_t at = L::kGdt + L::kFirstTss + v * 16ull;
        mem.write(at, lo);
        mem.write(at + 8, hi);
    }
}

void build_tss(BootRam& mem, unsigned nr_vcpus) {
    // Every port allowed: a zero bitmap, then the 0xff byte the CPU reads past its end.
    mem.fill(L::kIoBitmap, L::kIoBitmapSize, std::byte{0});
    mem.write<std::uint8_t>(L::kIoBitmap + L::kIoBitmapSize, 0xff);
    for (unsigned v = 0; v < nr_vcpus; ++v) {
        std::uint64_t base = L::kTssArray + v * L::kTssStride;
        mem.fill(base, L::kTssStride, std::byte{0});
        std::uint64_t rsp0 = L::kExceptionStacks + (v + 1ull) * L::kExceptionStackSize;
        mem.write<std::uint64_t>(base + 4, rsp0);
        mem.write<std::uint16_t>(base + 102, static_cast<std::uint16_t>(L::kIoBitmap - base));
    }
}

void build_idt(BootRam& mem, unsigned ist, std::optional<std::uint8_t> imm8_port) {
    mem.fill(L::kIdt, 256 * 16, std::byte{0});
    mem.fill(L::kExceptionStubs, L::kPageSize, std::byte{0xcc});
    for (unsigned v = 0; v < 32; ++v) {
        // Stub: [push $0] push $v; mov $kExceptionPort, %dx; out %al, %dx; jmp .
        // (or out %al, $imm8_port, which changes no register). The VMM reads
        // vector, error code and the CPU's frame from RSP.
        std::uint64_t stub = L::kExceptionStubs + v * 16ull;
        std::array<std::uint8_t, 16> code{};
        std::size_t n = 0;
        if (!exception_has_error_code(v)) {
            code[n++] = 0x6a;
            code[n++] = 0x00;
        }
        code[n++] = 0x6a;
        code[n++] = static_cast<std::uint8_t>(v);
        if (imm8_port) {
            code[n++] = 0xe6;
            code[n++] = *imm8_port;
        } else {
            code[n++] = 0x66;
            code[n++] = 0xba;
            code[n++] = L::kExceptionPort & 0xff;
            code[n++] = L::kExceptionPort >> 8;
            code[n++] = 0xee;
        }
        code[n++] = 0xeb;
        code[n++] = 0xfe;
        mem.write_bytes(stub, std::as_bytes(std::span(code.data(), n)));

        // 64-bit interrupt gate; #BP and #OF are reachable from ring 3 (int3, into).
        std::uint64_t dpl = (v == 3 || v == 4) ? 3 : 0;
        std::uint64_t lo = (stub & 0xffff) | (std::uint64_t{L::kKernelCs} << 16) |
                           (std::uint64_t{ist & 7} << 32) | ((0x8eull | (dpl << 5)) << 40) |
                           (((stub >> 16) & 0xffff) << 48);
        std::uint64_t hi = stub >> 32;
        mem.write(L::kIdt + v * 16ull, lo);
        mem.write(L::kIdt + v * 16ull + 8, hi);
    }
}

void build_boot_info(BootRam& mem, const BootPlan& plan, std::uint32_t tsc_khz,
                     std::string_view cmdline) {
    if (cmdline.size() >= L::kCmdlineMax)
        throw ConfigError(fmt::format("guest command line is {} bytes; at most {} are allowed",
                                      cmdline.size(), L::kCmdlineMax - 1));
    if (cmdline.find('\0') != std::string_view::npos)
        throw ConfigError("guest command line contains a NUL byte");
    mem.fill(L::kCmdline, L::kCmdlineMax, std::byte{0});
    mem.write_bytes(L::kCmdline, std::as_bytes(std::span(cmdline.data(), cmdline.size())));
    BootInfo info{};
    info.magic = kBootMagic;
    info.version = kAbiVersion;
    info.mem_size = plan.mem_size();
    info.nr_vcpus = plan.nr_vcpus();
    info.tsc_khz = tsc_khz;
    info.heap_start = plan.heap_start();
    info.heap_end = plan.heap_end();
    info.cmdline = cmdline.empty() ? 0 : L::kCmdline;
    mem.write(L::kBootInfo, info);
}

void load_image(BootRam& mem, const GuestImage& image) {
    for (const auto& seg : image.segments) {
        mem.write_bytes(seg.gpa, seg.data);
        mem.fill(seg.gpa + seg.data.size(), seg.mem_size - seg.data.size(), std::byte{0});
    }
}

std::uint64_t build_guest(BootRam& mem, const BootPlan& plan, const GuestImage& image,
                          std::uint32_t tsc_khz, std::string_view cmdline) {
    load_image(mem, image);
    build_gdt(mem, plan.nr_vcpus());
    build_tss(mem, plan.nr_vcpus());
    build_idt(mem);
    build_boot_info(mem, plan, tsc_khz, cmdline);
    return build_page_tables(mem, plan);
}

kvm_sregs initial_sregs(const kvm_sregs& base, unsigned vcpu, std::uint64_t cr3) {
    kvm_sregs s = base;
    kvm_segment code{};
    code.base = 0;
    code.limit = 0xffffffff;
    code.selector = L::kUserCs;
    code.type = 0xb; // execute/read, accessed
    code.present = 1;
    code.dpl = 3;
    code.s = 1;
    code.l = 1;
    code.g = 1;
    kvm_segment data = code;
    data.selector = L::kUserDs;
    data.type = 0x3; // read/write, accessed
    data.l = 0;
    data.db = 1;
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;

    s.tr = {};
    s.tr.base = L::kTssArray + vcpu * L::kTssStride;
    s.tr.limit = static_cast<std::uint32_t>((L::kIoBitmap - s.tr.base) + L::kIoBitmapSize);
    s.tr.selector = static_cast<std::uint16_t>(L::kFirstTss + vcpu * 16);
    s.tr.type = 0xb;
    s.tr.present = 1;
    s.ldt = {};
    s.ldt.type = 0x2;
    s.ldt.unusable = 1;

    s.gdt.base = L::kGdt;
    s.gdt.limit = static_cast<std::uint16_t>(L::kFirstTss + L::kMaxVcpus * 16 - 1);
    s.idt.base = L::kIdt;
    s.idt.limit = 256 * 16 - 1;

    constexpr std::uint64_t kCr0Pe = 1, kCr0Mp = 1 << 1, kCr0Et = 1 << 4, kCr0Ne = 1 << 5,
                            kCr0Wp = 1 << 16, kCr0Pg = 1ull << 31;
    constexpr std::uint64_t kCr4Pae = 1 << 5, kCr4Osfxsr = 1 << 9, kCr4Osxmmexcpt = 1 << 10;
    constexpr std::uint64_t kEferLme = 1 << 8, kEferLma = 1 << 10;
    s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
    s.cr3 = cr3;
    s.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
    s.efer = kEferLme | kEferLma;
    return s;
}

kvm_regs initial_regs(const BootPlan& plan, unsigned vcpu) {
    kvm_regs r{};
    r.rip = plan.entry();
    r.rflags = 0x3002; // IOPL 3, interrupts off, bit 1 always set
    r.rdi = L::kBootInfo;
    r.rsi = vcpu;
    r.rsp = plan.stack_top(vcpu);
    return r;
}

std::string_view exception_mnemonic(unsigned vector) noexcept {
    static constexpr std::array<std::string_view, 32> names = {
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS",
        "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE",  "#CP",
        "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31"};
    return vector < names.size() ? names[vector] : "#??";
}

bool exception_has_error_code(unsigned vector) noexcept {
    switch (vector) {
    case 8:
    case 10:
    case 11:
    case 12:
    case 13:
    case 14:
    case 17:
    case 21:
    case 29:
    case 30:
        return true;
    default:
        return false;
    }
}

} // namespace minivmm
