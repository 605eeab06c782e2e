#include "minivmm/kvm_flavor.hpp"

#include <cpuid.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace minivmm {

namespace {

// The hypervisor's 12-byte CPUID signature, "" without a hypervisor bit
// (leaf 0x40000000 is only defined when leaf 1 says a hypervisor is there).
std::string hypervisor_signature() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & (1u << 31)) == 0) return {};
    __cpuid(0x40000000, eax, ebx, ecx, edx);
    char sig[12];
    std::memcpy(sig, &ebx, 4);
    std::memcpy(sig + 4, &ecx, 4);
    std::memcpy(sig + 8, &edx, 4);
    return std::string(sig, sizeof sig);
}

} // namespace

std::string_view to_string(KvmFlavor flavor) noexcept {
    switch (flavor) {
    case KvmFlavor::hardware:
        return "hardware";
    case KvmFlavor::pvm:
        return "pvm";
    case KvmFlavor::emulated:
        return "emulated";
    }
    return "unknown";
}

KvmFlavor detect_kvm_flavor() {
    const char* forced = std::getenv("MINIVMM_KVM_EMULATED");
    if (forced && std::strcmp(forced, "1") == 0) return KvmFlavor::emulated;
    if (hypervisor_signature() == "TCGTCGTCGTCG") return KvmFlavor::emulated;
    if (::access("/sys/module/kvm_pvm", F_OK) == 0) return KvmFlavor::pvm;
    return KvmFlavor::hardware;
}

std::string describe_kvm_flavor(KvmFlavor flavor) {
    switch (flavor) {
    case KvmFlavor::hardware:
        return "hardware (the CPU's virtualization extensions)";
    case KvmFlavor::pvm:
        return "pvm (the kvm_pvm module: paravirtualized guests without VMX or SVM)";
    case KvmFlavor::emulated:
        return "emulated (QEMU's software CPU): its timings mean nothing";
    }
    return "unknown";
}

} // namespace minivmm
