#include "minivmm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm {

namespace {

// ioctl wrapper that retries on EINTR (all our ioctls except KVM_RUN are
// idempotent set-up calls) and turns failures into KvmError.
template <typename Arg>
int checked_ioctl(int fd, unsigned long request, Arg arg, const char* name, const char* hint = "") {
    int r;
    do {
        r = ::ioctl(fd, request, arg);
    } while (r < 0 && errno == EINTR);
    if (r < 0) throw KvmError(name, errno, hint);
    return r;
}

std::string open_hint(int err) {
    switch (err) {
    case ENOENT:
        return "no /dev/kvm: is the kvm module (kvm_intel, kvm_amd or kvm_pvm) loaded?";
    case EACCES:
    case EPERM:
        return "permission denied: add yourself to the 'kvm' group or run as root";
    case ENXIO:
    case ENODEV:
        return "the KVM device exists but no KVM module is bound to it";
    default:
        return {};
    }
}

// Debian 12's 6.1 UAPI declares flexible arrays with __DECLARE_FLEX_ARRAY,
// which in C++ inserts a one-byte empty struct: sizeof(kvm_cpuid2) becomes 12
// and `entries` moves to offset 12, so both the ioctl numbers and the layout
// differ from the kernel's (fixed in later UAPI headers). We use the C layout:
// an 8-byte header followed by the entries.
struct CpuidHeader {
    std::uint32_t nent;
    std::uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);

// A kvm_cpuid2 in the kernel's layout.
struct CpuidBuffer {
    explicit CpuidBuffer(std::size_t n)
        : bytes(sizeof(CpuidHeader) + n * sizeof(kvm_cpuid_entry2)) {
        header()->nent = static_cast<std::uint32_t>(n);
    }
    CpuidHeader* header() { return reinterpret_cast<CpuidHeader*>(bytes.data()); }
    kvm_cpuid_entry2* entries() {
        return reinterpret_cast<kvm_cpuid_entry2*>(bytes.data() + sizeof(CpuidHeader));
    }
    std::vector<std::byte> bytes;
};

} // namespace

KvmSystem::KvmSystem(const std::string& path) {
    fd_.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd_) {
        int err = errno;
        throw KvmError("open " + path, err, open_hint(err));
    }
    int version = checked_ioctl(fd_.get(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
    if (version != KVM_API_VERSION)
        throw KvmError(
            "KVM_GET_API_VERSION", EINVAL,
            fmt::format("kernel KVM API version {}, expected {}", version, KVM_API_VERSION));
}

int KvmSystem::check_extension(long cap) const {
    int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

int KvmSystem::vcpu_mmap_size() const {
    return checked_ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
}

int KvmSystem::max_vcpus() const {
    // api.rst 4.4: KVM_CAP_MAX_VCPUS absent means KVM_CAP_NR_VCPUS is the max,
    // and NR_VCPUS absent means 4.
    if (int n = check_extension(KVM_CAP_MAX_VCPUS); n > 0) return n;
    return recommended_vcpus();
}

int KvmSystem::recommended_vcpus() const {
    int n = check_extension(KVM_CAP_NR_VCPUS);
    return n > 0 ? n : 4;
}

std::vector<kvm_cpuid_entry2> KvmSystem::supported_cpuid() const {
    // The ioctl answers E2BIG while the buffer is too small: grow and retry.
    for (std::size_t n = 64; n <= 4096; n *= 2) {
        CpuidBuffer buf(n);
        if (::ioctl(fd_.get(), kGetSupportedCpuid, buf.bytes.data()) == 0)
            return {buf.entries(), buf.entries() + buf.header()->nent};
        if (errno != E2BIG) throw KvmError("KVM_GET_SUPPORTED_CPUID", errno);
    }
    throw KvmError("KVM_GET_SUPPORTED_CPUID", E2BIG, "more than 4096 CPUID entries");
}

KvmVm KvmSystem::create_vm() const {
    int mmap_size = vcpu_mmap_size();
    int fd = checked_ioctl(fd_.get(), KVM_CREATE_VM, 0, "KVM_CREATE_VM",
                           "out of memory, or the KVM module refuses new VMs");
    return KvmVm(UniqueFd(fd), mmap_size);
}

int KvmVm::check_extension(long cap) const {
    int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

void KvmVm::enable_cap(std::uint32_t cap, std::uint64_t arg0) const {
    kvm_enable_cap c{};
    c.cap = cap;
    c.args[0] = arg0;
    checked_ioctl(fd_.get(), KVM_ENABLE_CAP, &c, "KVM_ENABLE_CAP",
                  fmt::format("capability {}", cap).c_str());
}

std::uint64_t KvmVm::reset_dirty_rings() const {
    return static_cast<std::uint64_t>(
        checked_ioctl(fd_.get(), KVM_RESET_DIRTY_RINGS, 0, "KVM_RESET_DIRTY_RINGS"));
}

void KvmVm::set_user_memory_region(const kvm_userspace_memory_region& region) const {
    checked_ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION",
                  "overlapping slot, unaligned range, or slot id beyond KVM_CAP_NR_MEMSLOTS");
}

namespace {
kvm_ioeventfd pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd, bool remove,
                          std::optional<std::uint64_t> datamatch) {
    kvm_ioeventfd ev{};
    ev.addr = port;
    ev.len = len;
    ev.fd = eventfd;
    ev.flags = KVM_IOEVENTFD_FLAG_PIO | (remove ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0u) |
               (datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0u);
    ev.datamatch = datamatch.value_or(0);
    return ev;
}
} // namespace

void KvmVm::add_pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd,
                            std::optional<std::uint64_t> datamatch) const {
    auto ev = pio_eventfd(port, len, eventfd, false, datamatch);
    checked_ioctl(fd_.get(), KVM_IOEVENTFD, &ev, "KVM_IOEVENTFD",
                  "port already bound, or ioeventfd unsupported");
}

void KvmVm::remove_pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd,
                               std::optional<std::uint64_t> datamatch) const {
    auto ev = pio_eventfd(port, len, eventfd, true, datamatch);
    checked_ioctl(fd_.get(), KVM_IOEVENTFD, &ev, "KVM_IOEVENTFD (deassign)");
}

KvmVcpu KvmVm::create_vcpu(unsigned id) const {
    UniqueFd fd(checked_ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id),
                              "KVM_CREATE_VCPU", "vCPU id beyond KVM_CAP_MAX_VCPU_ID?"));
    void* p = ::mmap(nullptr, static_cast<std::size_t>(vcpu_mmap_size_), PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw KvmError("mmap of kvm_run", errno);
    return KvmVcpu(std::move(fd), HostMapping(p, static_cast<std::size_t>(vcpu_mmap_size_)), id);
}

int KvmVcpu::run() const {
    if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return 0;
    int err = errno;
    if (err == EINTR || err == EAGAIN) return -err;
    throw KvmError("KVM_RUN", err, fmt::format("vcpu {}", id_));
}

kvm_regs KvmVcpu::regs() const {
    kvm_regs r{};
    checked_ioctl(fd_.get(), KVM_GET_REGS, &r, "KVM_GET_REGS");
    return r;
}

void KvmVcpu::set_regs(const kvm_regs& r) const {
    checked_ioctl(fd_.get(), KVM_SET_REGS, &r, "KVM_SET_REGS");
}

kvm_sregs KvmVcpu::sregs() const {
    kvm_sregs s{};
    checked_ioctl(fd_.get(), KVM_GET_SREGS, &s, "KVM_GET_SREGS");
    return s;
}

void KvmVcpu::set_sregs(const kvm_sregs& s) const {
    checked_ioctl(fd_.get(), KVM_SET_SREGS, &s, "KVM_SET_SREGS",
                  "KVM rejected the segment/control register state");
}

namespace {
// KVM_GET_XSAVE and KVM_SET_XSAVE with the region's true size (see
// XsaveImage).
static_assert(sizeof(KvmVcpu::XsaveImage) == 4096);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, KvmVcpu::XsaveImage);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, KvmVcpu::XsaveImage);
} // namespace

KvmVcpu::XsaveImage KvmVcpu::xsave() const {
    XsaveImage x;
    checked_ioctl(fd_.get(), kGetXsave, x.bytes.data(), "KVM_GET_XSAVE");
    return x;
}

void KvmVcpu::set_xsave(const XsaveImage& x) const {
    checked_ioctl(fd_.get(), kSetXsave, x.bytes.data(), "KVM_SET_XSAVE",
                  "KVM rejected the FPU state (XSAVE header or MXCSR reserved bits)");
}

void KvmVcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const {
    CpuidBuffer buf(entries.size());
    std::copy(entries.begin(), entries.end(), buf.entries());
    checked_ioctl(fd_.get(), kSetCpuid2, buf.bytes.data(), "KVM_SET_CPUID2");
}

// struct kvm_msrs without its flexible array, whose C++ reading of
// __DECLARE_FLEX_ARRAY makes sizeof (and so the ioctl numbers) 16, not the
// kernel's 8 (as CpuidHeader above).
struct MsrsHeader {
    std::uint32_t nmsrs;
    std::uint32_t pad;
};
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);

// A kvm_msrs header followed by its entries, as the kernel lays them out.
struct MsrBuffer {
    explicit MsrBuffer(std::size_t n) : bytes(sizeof(MsrsHeader) + n * sizeof(kvm_msr_entry)) {
        header()->nmsrs = static_cast<std::uint32_t>(n);
    }
    MsrsHeader* header() { return reinterpret_cast<MsrsHeader*>(bytes.data()); }
    kvm_msr_entry* entries() {
        return reinterpret_cast<kvm_msr_entry*>(bytes.data() + sizeof(MsrsHeader));
    }
    std::vector<std::byte> bytes;
};

void KvmVcpu::set_msrs(std::span<const Msr> msrs) const {
    MsrBuffer buf(msrs.size());
    for (std::size_t i = 0; i < msrs.size(); ++i)
        buf.entries()[i] = kvm_msr_entry{msrs[i].index, 0, msrs[i].value};
    // api.rst 4.19: the result is the number of MSRs set; a short count
    // means KVM refused the one at that index.
    int n = checked_ioctl(fd_.get(), kSetMsrs, buf.bytes.data(), "KVM_SET_MSRS");
    if (static_cast<std::size_t>(n) != msrs.size())
        throw KvmError(
            fmt::format("KVM_SET_MSRS of MSR {:#x}", msrs[static_cast<std::size_t>(n)].index),
            EINVAL, "KVM refused the value or does not know the MSR");
}

std::uint64_t KvmVcpu::msr(std::uint32_t index) const {
    MsrBuffer buf(1);
    buf.entries()[0] = kvm_msr_entry{index, 0, 0};
    int n = checked_ioctl(fd_.get(), kGetMsrs, buf.bytes.data(), "KVM_GET_MSRS");
    if (n != 1)
        throw KvmError(fmt::format("KVM_GET_MSRS of MSR {:#x}", index), EINVAL,
                       "KVM does not know the MSR");
    return buf.entries()[0].data;
}

std::uint32_t KvmVcpu::tsc_khz() const {
    int r = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
    return r > 0 ? static_cast<std::uint32_t>(r) : 0;
}

} // namespace minivmm
