#include "minivmm/vm_exit.hpp"

namespace minivmm {

const char* to_string(VmExit::Kind kind) noexcept {
    switch (kind) {
    case VmExit::Kind::guest_exit:
        return "guest exit";
    case VmExit::Kind::guest_fault:
        return "guest fault";
    case VmExit::Kind::timeout:
        return "timeout";
    case VmExit::Kind::signal:
        return "signal";
    case VmExit::Kind::vmm_error:
        return "vmm error";
    case VmExit::Kind::quit:
        return "quit";
    }
    return "?";
}

} // namespace minivmm
