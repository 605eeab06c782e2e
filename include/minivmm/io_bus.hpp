/// \file
/// The I/O bus: an ordered interval map from port (or MMIO) ranges to devices.
/// A vCPU's KVM_EXIT_IO / KVM_EXIT_MMIO is dispatched by one O(log n) lookup.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

namespace minivmm {

class KvmVcpu;

/// What the vCPU loop does after a device handled an access.
enum class ExitAction {
    resume, ///< KVM_RUN again
    stop,   ///< leave the loop: the device asked the VM to stop
    park,   ///< this vCPU is done; wait until the VM stops
};

/// One port or MMIO access, as a device sees it (valid during the call only).
struct IoAccess {
    unsigned vcpu_index;       ///< index of the vCPU that made it
    const KvmVcpu& vcpu;       ///< for devices that need registers
    std::uint64_t address;     ///< port or guest-physical address
    std::uint64_t offset;      ///< address - start of the device's range
    bool is_write;             ///< guest write (else read)
    std::span<std::byte> data; ///< bytes written by the guest, or to fill for a read
};

/// A device on an IoBus or behind an MMIO region.
class IoDevice {
  public:
    virtual ~IoDevice() = default;
    /// Called on the vCPU thread, possibly on several vCPU threads at once;
    /// must not block for long, allocate or log on the common path. An
    /// exception stops the VM with VmExit::Kind::vmm_error.
    virtual ExitAction access(const IoAccess& access) = 0;
};

/// Maps address ranges to devices (which it does not own: they must outlive
/// their ranges). Not synchronized: ranges are registered before vCPUs
/// start; find() may then be called from any number of threads.
class IoBus {
  public:
    /// `name` appears in error messages ("port" gives "port bus: ...").
    explicit IoBus(std::string name) : name_(std::move(name)) {}

    /// Registers [base, base + size) for `device`.
    /// \throws ConfigError on an empty, wrapping or overlapping range.
    void add(std::uint64_t base, std::uint64_t size, IoDevice& device);
    /// Unregisters the range that starts at `base`; false if there is none.
    bool remove(std::uint64_t base);

    /// What find() found.
    struct Hit {
        IoDevice* device = nullptr; ///< null: no device
        std::uint64_t offset = 0;   ///< address - start of the device's range
    };
    /// The device whose range holds all of [address, address + len), if any.
    Hit find(std::uint64_t address, std::uint64_t len) const noexcept;
    /// Number of registered ranges.
    std::size_t size() const noexcept { return ranges_.size(); }

  private:
    struct Range {
        std::uint64_t end; // exclusive
        IoDevice* device;
    };
    std::string name_;
    std::map<std::uint64_t, Range> ranges_; // keyed by start
};

} // namespace minivmm
