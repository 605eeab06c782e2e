#include "minivmm/version.hpp"

namespace minivmm {

const char* version() noexcept {
    return MINIVMM_VERSION;
}

} // namespace minivmm
