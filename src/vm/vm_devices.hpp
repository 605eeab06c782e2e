// The device part of a VM: the console, the port I/O bus and what the guest
// ABI puts on it (hypercalls, the exception report port, the block device
// and the router that sends it its hypercalls). The wiring lives here; the
// devices themselves in src/devices/.
#pragma once

#include <memory>

#include "devices/block_device.hpp"
#include "devices/hotplug_registry.hpp"
#include "devices/hypercalls.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/console.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"
#include "vcpu/vcpu_host.hpp"

namespace minivmm {

class VmDevices {
  public:
    // Devices of the guest ABI on a fresh port bus; with config.disk_path,
    // the block device (one queue per vCPU, doorbells as ioeventfds on `vm`).
    // \throws ConfigError for a disk that cannot be opened.
    VmDevices(const BootRam& ram, VcpuHost& host, const VmConfig& config, const KvmVm& vm);
    VmDevices(const VmDevices&) = delete;
    VmDevices& operator=(const VmDevices&) = delete;

    // Hypercalls 22 and 23 read hot-added RAM from `registry`.
    void set_hotplug(HotplugRegistry* registry) noexcept { hypercalls_.set_hotplug(registry); }
    IoBus& port_bus() noexcept { return port_bus_; }
    // The block device, or null without a disk.
    BlockDevice* disk() const noexcept { return disk_.get(); }
    // Ends the disk's I/O threads (they ask the VcpuHost whether it stops:
    // call while it lives).
    void stop() noexcept {
        if (disk_) disk_->stop();
    }

  private:
    std::shared_ptr<ConsoleSink> console_;
    IoBus port_bus_{"port"};
    HypercallDevice hypercalls_;
    ExceptionReportDevice exception_report_;
    std::unique_ptr<BlockDevice> disk_;                 // with config.disk_path
    std::unique_ptr<BlockHypercallRouter> disk_router_; // hypercall ports, with a disk
};

} // namespace minivmm
