#include "vm/vm_devices.hpp"

#include "minivmm/boot_layout.hpp"

namespace minivmm {

VmDevices::VmDevices(const BootRam& ram, VcpuHost& host, const VmConfig& config, const KvmVm& vm)
    : console_(config.console ? config.console : std::make_shared<FdConsole>(1)),
      hypercalls_(ram, *console_, host), exception_report_(ram, host) {
    if (config.disk_path.empty()) {
        port_bus_.add(layout::kHypercallPortBase, layout::kHypercallPortCount, hypercalls_);
    } else {
        // The disk serves hypercalls 17 and 18; the router sends it those.
        // One queue per vCPU; rings' doorbells become ioeventfds on this VM.
        disk_ = std::make_unique<BlockDevice>(ram, host, config.disk_path, config.disk_readonly,
                                              config.disk_io, config.vcpus, &vm);
        disk_->set_seccomp(config.seccomp);
        disk_router_ = std::make_unique<BlockHypercallRouter>(hypercalls_, *disk_);
        port_bus_.add(layout::kHypercallPortBase, layout::kHypercallPortCount, *disk_router_);
    }
    port_bus_.add(layout::kExceptionPort, 1, exception_report_);
}

} // namespace minivmm
