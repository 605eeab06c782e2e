// A VmControl for device tests and fuzz targets that run without a VM:
// records the first stop request, as Vm does, and counts parks.
#pragma once

#include <optional>
#include <utility>

#include "minivmm/vm_exit.hpp"
#include "vcpu/vm_control.hpp"

namespace minivmm::test {

struct FakeControl final : VmControl {
    bool stopping() const noexcept override { return stop.has_value(); }
    void request_stop(VmExit reason) noexcept override {
        if (!stop) stop = std::move(reason);
    }
    void park(unsigned) noexcept override { ++parks; }
    void dirty_ring_full(unsigned) override {}

    std::optional<VmExit> stop;
    int parks = 0;
};

} // namespace minivmm::test
