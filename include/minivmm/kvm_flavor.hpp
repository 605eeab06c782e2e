/// \file
/// What kind of KVM this machine has, as far as timings go
/// (docs/benchmarks.md): KVM on the CPU's virtualization extensions, KVM's PVM
/// module, or KVM inside a virtual machine whose CPU is emulated in software,
/// where every timing (native ones included) means nothing.
#pragma once

#include <string>
#include <string_view>

namespace minivmm {

/// The kind of KVM under /dev/kvm.
enum class KvmFlavor {
    hardware, ///< KVM on the CPU's own virtualization extensions (VMX or SVM)
    pvm,      ///< KVM's PVM module (kvm_pvm): guests run paravirtualized, without VMX or SVM
    emulated, ///< KVM inside a virtual machine on QEMU's software CPU (TCG): timings mean nothing
};

/// "hardware", "pvm" or "emulated".
std::string_view to_string(KvmFlavor flavor) noexcept;

/// The KVM of this machine. The rules, the first that matches wins:
/// 1. the environment variable `MINIVMM_KVM_EMULATED` is `1`: emulated (the
///    project's emulated-VM runner sets it inside its VM; tests set it to take
///    that path on any machine);
/// 2. CPUID reports a hypervisor (leaf 1, ECX bit 31) whose signature (leaf
///    0x40000000, EBX ECX EDX) is "TCGTCGTCGTCG", QEMU's software CPU: emulated;
/// 3. `/sys/module/kvm_pvm` exists: pvm;
/// 4. otherwise hardware.
///
/// Opens no device. Reads the environment, so it must not run concurrently
/// with setenv().
KvmFlavor detect_kvm_flavor();

/// The flavor for a message, e.g. "emulated (QEMU's software CPU): its
/// timings mean nothing".
std::string describe_kvm_flavor(KvmFlavor flavor);

} // namespace minivmm
