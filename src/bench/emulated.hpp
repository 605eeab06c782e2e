// The marks of figures measured on an emulated KVM (minivmm/kvm_flavor.hpp:
// KVM inside QEMU's software CPU, where every timing, native ones too, means
// nothing). minivmm-bench refuses to run there without --allow-emulated;
// with it, every output keeps the figures and marks each one.
#pragma once

#include <string>
#include <string_view>

namespace minivmm::bench {

// The first line of a text report measured on an emulated KVM.
inline constexpr std::string_view kEmulatedBanner = "*** EMULATED KVM: timings are not real ***";
// Ends every figure row of a text report measured on an emulated KVM.
inline constexpr std::string_view kEmulatedSuffix = "  [emulated]";

// kEmulatedSuffix, or "" on a real KVM.
inline std::string_view emulated_suffix(bool emulated) {
    return emulated ? kEmulatedSuffix : std::string_view{};
}

// kEmulatedBanner and a newline, or "" on a real KVM.
inline std::string emulated_banner_line(bool emulated) {
    return emulated ? std::string(kEmulatedBanner) + "\n" : std::string{};
}

} // namespace minivmm::bench
