// The vDSO of a Linux program (issue 16; docs/linux-programs.md, "The
// vDSO"): the ELF image built into the library (guest/vdso/), its dynamic
// symbols as glibc and musl find them, and the publisher that keeps the
// parameter page below it in step with the host's clocks. Every system call
// is a VM exit (about 25 us), so clock_gettime and friends must not be one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/time.h>

#include "minivmm/abi/vdso_data.h"

namespace minivmm::linux_abi {

inline constexpr std::size_t kVdsoPageSize = 4096;
static_assert(kVdsoPageSize == MVG_VDSO_DATA_SIZE);

// The vDSO image (an ELF shared object linked at 0). The loader maps
// kVdsoPageSize + vdso_mapped_size() bytes: the parameter page, then these
// bytes (zero-padded to whole pages), read+execute for the program; the
// address of the second part is AT_SYSINFO_EHDR.
std::span<const std::byte> vdso_image();
// vdso_image().size() rounded up to whole pages.
std::size_t vdso_mapped_size();

// The dynamic section of a vDSO image, read as glibc and musl read the one
// Linux gives them: through the program headers (the load base from the
// PT_LOAD, the tables from PT_DYNAMIC), never the section headers. The image
// must outlive this object. Malformed images throw ImageError.
class VdsoSymbols {
  public:
    explicit VdsoSymbols(std::span<const std::byte> image);

    // The image offset of `name` defined under `version`, through DT_HASH
    // (musl's __vdsosym needs DT_HASH) with musl's checks of type, binding,
    // section and version; nullopt if there is none.
    std::optional<std::uint64_t> find(std::string_view name,
                                      std::string_view version = MVG_VDSO_VERSION) const;
    // The same through DT_GNU_HASH (glibc's lookup when it is present).
    std::optional<std::uint64_t> find_gnu_hash(std::string_view name,
                                               std::string_view version = MVG_VDSO_VERSION) const;

    const std::string& soname() const { return soname_; }
    // The names of the version definitions other than the base one.
    const std::vector<std::string>& versions() const { return versions_; }
    // Whether every symbol a program may look up (defined, not local) carries
    // a version other than the base one.
    bool all_defined_symbols_versioned() const;
    // Any DT_REL, DT_RELA, DT_JMPREL or DT_TEXTREL: work for a dynamic linker
    // that a static program does not have.
    bool has_relocations() const { return has_relocations_; }

  private:
    template <class T>
    T read(std::uint64_t offset) const;
    std::uint64_t offset_of(std::uint64_t vaddr) const;
    std::string_view string_at(std::uint64_t index) const;
    bool symbol_matches(std::uint32_t index, std::string_view name, std::string_view version) const;
    std::uint32_t symbol_count() const;

    std::span<const std::byte> image_;
    std::uint64_t load_bias_ = 0; // file offset = vaddr - load_bias_
    std::uint64_t strtab_ = 0, strsz_ = 0, symtab_ = 0;
    std::uint64_t hash_ = 0, gnu_hash_ = 0, versym_ = 0, verdef_ = 0, verdefnum_ = 0;
    bool has_relocations_ = false;
    std::string soname_;
    std::vector<std::string> versions_;
};

// Where the publisher reads time. HostClockSource is the host; tests put a
// model in its place to drive the clocks through NTP-like rate changes.
class ClockSource {
  public:
    virtual ~ClockSource() = default;
    // The guest's TSC now, not read before the loads that precede the call.
    virtual std::uint64_t tsc() = 0;
    // A Linux clock (CLOCK_*) now, in nanoseconds.
    virtual std::int64_t clock_ns(clockid_t clock) = 0;
    // clock_getres of `clock`, in nanoseconds.
    virtual std::int64_t resolution_ns(clockid_t clock) = 0;
    // gettimeofday's time zone (Linux's sys_tz).
    virtual struct timezone time_zone() = 0;
    virtual void sleep(std::chrono::nanoseconds duration) = 0;
};

// The host's clocks. The guest's TSC is the host's plus `guest_tsc_offset`
// (KVM's TSC offset; the guest's TSC rate must be the host's, no scaling).
class HostClockSource final : public ClockSource {
  public:
    explicit HostClockSource(std::int64_t guest_tsc_offset = 0)
        : guest_tsc_offset_(guest_tsc_offset) {}
    std::uint64_t tsc() override;
    std::int64_t clock_ns(clockid_t clock) override;
    std::int64_t resolution_ns(clockid_t clock) override;
    struct timezone time_zone() override;
    void sleep(std::chrono::nanoseconds duration) override;

  private:
    std::int64_t guest_tsc_offset_;
};

// The period at which update() keeps every clock within 1 us of the host's
// under NTP's usual slewing (measured, docs/linux-programs.md).
inline constexpr std::chrono::milliseconds kVdsoUpdateInterval{10};

enum class VdsoGetcpu {
    syscall, // getcpu is a system call (the default)
    fixed,   // Options::cpu and ::node (a guest with one vCPU)
    rdtscp,  // TSC_AUX, which the VMM sets per vCPU to cpu | node << 12
};

// Keeps one vDSO parameter page (minivmm/abi/vdso_data.h) in step with the
// host's clocks. Each clock the vDSO serves is a line through a recent
// (TSC, time) sample; update() moves the lines so that they stay continuous
// (the clocks never step back) and meet the host's clocks again one update
// interval later, following NTP's slewing.
class VdsoPublisher {
  public:
    struct Options {
        // KVM's TSC rate (KVM_GET_TSC_KHZ). The rate is always measured
        // against CLOCK_MONOTONIC_RAW; a hint more than 0.1% away from it
        // is logged, as it means the guest's TSC is not the host's.
        std::optional<std::uint64_t> tsc_khz_hint;
        std::chrono::nanoseconds calibration{std::chrono::milliseconds(20)};
        // How often the caller will call update().
        std::chrono::nanoseconds update_interval{kVdsoUpdateInterval};
        // False: clock_mode NONE, every clock call a system call (for a host
        // whose TSC is not a usable clock).
        bool use_tsc = true;
        VdsoGetcpu getcpu = VdsoGetcpu::syscall;
        std::uint32_t cpu = 0, node = 0; // VdsoGetcpu::fixed
    };

    // `page`: at least sizeof(mvg_vdso_data) bytes, 8-byte aligned (in the
    // guest, the RAM page below the vDSO). Zeroes it, calibrates the TSC
    // (blocks for Options::calibration) and publishes.
    VdsoPublisher(std::span<std::byte> page, std::unique_ptr<ClockSource> clocks,
                  const Options& options);
    VdsoPublisher(std::span<std::byte> page, const Options& options)
        : VdsoPublisher(page, std::make_unique<HostClockSource>(), options) {}
    VdsoPublisher(VdsoPublisher&&) = default;
    VdsoPublisher& operator=(VdsoPublisher&&) = default;

    // Samples the host's clocks and republishes; call every
    // Options::update_interval.
    void update();

    // The TSC rate measured against CLOCK_MONOTONIC_RAW, in Hz.
    double tsc_hz() const { return tsc_hz_; }
    // What the page holds now (seq aside).
    const mvg_vdso_data& published() const { return data_; }

  private:
    // A host clock and the TSC read together.
    struct Reading {
        std::uint64_t tsc;
        std::int64_t ns;
    };
    // One timeline, tracked from readings of one host clock.
    struct Tracker {
        mvg_vdso_timeline line{};
        std::deque<Reading> history; // about the last second, oldest first: the rate
        std::uint64_t rate_mult = 0; // measured ns per tick, times 2^shift
    };
    void track(Tracker& tracker, clockid_t clock);

    void sample_offsets(bool first);
    void publish();

    std::span<std::byte> page_;
    std::unique_ptr<ClockSource> clocks_;
    Options options_;
    double tsc_hz_ = 0;
    std::uint64_t interval_tsc_ = 0;    // Options::update_interval in ticks
    std::uint64_t rate_window_tsc_ = 0; // the history the rate is measured over
    Tracker monotonic_, raw_;
    mvg_vdso_data data_{};
};

// A timeline's value at `tsc`, computed as the vDSO computes it.
std::uint64_t timeline_ns(const mvg_vdso_timeline& line, std::uint64_t tsc);

} // namespace minivmm::linux_abi
