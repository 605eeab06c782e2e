// A VcpuHost for device tests and fuzz targets that run without a VM:
// records the first stop request, as Vm does, and counts parks.
#pragma once

#include <atomic>
#include <optional>
#include <utility>

#include "minivmm/vm_exit.hpp"
#include "vcpu/vcpu_host.hpp"

namespace minivmm::test {

struct FakeVcpuHost final : VcpuHost {
    // Atomic: device threads (a block device's I/O threads) ask it too.
    bool stopping() const noexcept override { return stopped.load(std::memory_order_acquire); }
    void request_stop(VmExit reason) noexcept override {
        if (!stop) stop = std::move(reason);
        stopped.store(true, std::memory_order_release);
    }
    void park(unsigned) noexcept override { ++parks; }
    void dirty_ring_full(unsigned) override {}

    std::optional<VmExit> stop;
    std::atomic<bool> stopped{false};
    int parks = 0;
};

} // namespace minivmm::test
