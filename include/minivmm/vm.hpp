// A virtual machine that runs one guest ABI v1 image: guest RAM, vCPU
// threads, the port/MMIO buses with the ABI's hypercalls, and an Asio event
// loop on the calling thread that handles the time limit and SIGINT/SIGTERM.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "minivmm/boot.hpp"
#include "minivmm/console.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/guest_memory.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm_exit.hpp"

namespace minivmm {

struct VmConfig {
    std::uint64_t mem_size = 256ull << 20;
    unsigned vcpus = 1;
    std::string cmdline;
    // Stop the guest with VmExit::Kind::timeout after this long.
    std::optional<std::chrono::nanoseconds> timeout;
    // Stop cleanly on SIGINT/SIGTERM while run() is running.
    bool handle_signals = true;
    // Console output; null means the process's stdout.
    std::shared_ptr<ConsoleSink> console;
};

// Exits counted by KVM exit reason (KVM_EXIT_*), summed over vCPUs.
struct ExitCounts {
    static constexpr std::size_t kReasons = 64;
    std::array<std::uint64_t, kReasons> by_reason{};
    std::uint64_t total() const noexcept;
};

class Vm {
  public:
    // Creates the VM, its RAM and vCPUs, loads `image` and builds the boot
    // state. Throws ConfigError, ImageError or KvmError.
    Vm(const KvmSystem& kvm, VmConfig config, const GuestImage& image);
    ~Vm();
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    // Starts every vCPU at the entry point and blocks until the VM stops.
    // Call once. Never throws for guest behaviour: that is in the VmExit.
    VmExit run();
    // Thread-safe; the first reason wins. Kicks every vCPU out of KVM_RUN.
    void request_stop(VmExit reason) noexcept;

    GuestMemory& memory() noexcept;
    IoBus& port_bus() noexcept;
    IoBus& mmio_bus() noexcept;
    const BootPlan& plan() const noexcept;
    const KvmVm& kvm_vm() const noexcept;
    std::uint32_t tsc_khz() const noexcept;
    // Valid after run() returned.
    ExitCounts exit_counts() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Reads an image file sized for `config` (RAM minus the vCPU stacks).
GuestImage load_image_for(const std::string& path, const VmConfig& config);

} // namespace minivmm
