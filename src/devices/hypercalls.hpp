// Guest ABI v1 hypercalls (ports 0x500 + nr) and the port through which the
// VMM's ring-0 exception stubs report a guest exception.
#pragma once

#include <atomic>
#include <optional>
#include <span>

#include "devices/hotplug_registry.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/console.hpp"
#include "minivmm/io_bus.hpp"
#include "vcpu/vcpu_host.hpp"

namespace minivmm {

class HypercallDevice final : public IoDevice {
  public:
    HypercallDevice(const BootRam& mem, ConsoleSink& console, VcpuHost& host) noexcept
        : mem_(mem), console_(console), host_(host) {}
    ExitAction access(const IoAccess& access) override;
    // Serves hypercalls 22 and 23 from `hotplug` (set before the vCPUs start).
    void set_hotplug(HotplugRegistry* hotplug) noexcept { hotplug_ = hotplug; }

  private:
    ExitAction fail(const IoAccess& access, std::string why);
    ExitAction mem_map(const IoAccess& access, std::uint32_t block_gpa);
    ExitAction mem_claim(const IoAccess& access, std::uint32_t block_gpa);
    // Copies the block at gpa (above the reserved pages, writable RAM) into
    // value; the span is where answer() stores the reply.
    template <typename T>
    std::optional<std::span<std::byte>> writable_block(std::uint64_t gpa, T& value) const;
    template <typename T>
    void answer(std::span<std::byte> bytes, std::uint64_t gpa, const T& value) const;

    const BootRam& mem_;
    ConsoleSink& console_;
    VcpuHost& host_;
    HotplugRegistry* hotplug_ = nullptr;
};

class ExceptionReportDevice final : public IoDevice {
  public:
    ExceptionReportDevice(const BootRam& mem, VcpuHost& host) noexcept : mem_(mem), host_(host) {}
    ExitAction access(const IoAccess& access) override;

  private:
    const BootRam& mem_;
    VcpuHost& host_;
};

} // namespace minivmm
