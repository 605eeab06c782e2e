# cmake -DIN=linux-vdso.so -DOUT=vdso_image.cpp -P embed_vdso.cmake
# Writes the bytes of IN as the array that src/program/vdso.cpp declares.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
if(digits EQUAL 0)
  message(FATAL_ERROR "embed_vdso: ${IN} is empty")
endif()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes a line.
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"// Generated from ${IN} by guest/vdso/embed_vdso.cmake: do not edit.
#include <cstddef>

namespace minivmm::linux_abi::detail {
alignas(64) extern const unsigned char kVdsoImage[] = {
    ${bytes}
};
extern const std::size_t kVdsoImageSize = sizeof(kVdsoImage);
} // namespace minivmm::linux_abi::detail
")
file(RENAME "${OUT}.tmp" "${OUT}")
