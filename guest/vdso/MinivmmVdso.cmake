# minivmm's vDSO for Linux programs (guest/vdso/vdso.c, docs/linux-programs.md):
# built here as a freestanding shared object with the host's C compiler, then
# embedded into libminivmm (layer `program`) as a generated C++ array, so the
# library carries the image and needs no file at run time.
#
# Sets MINIVMM_VDSO_IMAGE_SOURCE: the generated .cpp, for the layer's SOURCES.
# Included from the top-level CMakeLists.txt, so that the commands are in the
# directory of the target that compiles the generated file.
include_guard(GLOBAL)

set(_vdso_dir "${CMAKE_CURRENT_LIST_DIR}")
set(_vdso_obj_dir "${CMAKE_BINARY_DIR}/vdso")
file(MAKE_DIRECTORY "${_vdso_obj_dir}")
set(_vdso_object "${_vdso_obj_dir}/vdso.o")
set(_vdso_linked "${_vdso_obj_dir}/linux-vdso.so.dbg")
set(MINIVMM_VDSO_IMAGE "${_vdso_obj_dir}/linux-vdso.so")
set(MINIVMM_VDSO_IMAGE_SOURCE "${_vdso_obj_dir}/vdso_image.cpp")

# The guest flags (guest/cmake/MinivmmGuest.cmake: freestanding, only the
# compiler's own headers, nothing from the host build) except that the vDSO
# is position independent: -fPIC with hidden visibility reaches the
# parameter page and its own functions PC-relatively, without a GOT.
# -fno-jump-tables: clang puts a switch's table of absolute addresses in
# .data.rel.ro, which needs relocations. Unwind tables on purpose: debuggers
# and profilers unwind through the vDSO.
set(_vdso_cflags
  -std=gnu11 -ffreestanding -fno-builtin -nostdinc -isystem "${_MVG_C_SYSINC}"
  "-I${PROJECT_SOURCE_DIR}/include"
  -fPIC -fvisibility=hidden -mcmodel=small -fno-jump-tables -O2 -g0
  -fno-stack-protector -fno-stack-clash-protection -fcf-protection=none -U_FORTIFY_SOURCE
  -fasynchronous-unwind-tables -fno-exceptions
  -Wall -Wextra -Werror)
# As Linux links its vDSO: both hash tables (musl reads DT_HASH, glibc
# prefers DT_GNU_HASH), -Bsymbolic, its soname. The linker script fails the
# link on any data, GOT, PLT or relocation.
set(_vdso_ldflags
  -nostdlib -shared "-Wl,-T,${_vdso_dir}/vdso.lds"
  -Wl,--hash-style=both -Wl,-soname=linux-vdso.so.1 -Wl,-Bsymbolic
  -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--eh-frame-hdr -Wl,--build-id=none
  -Wl,--no-undefined -Wl,--orphan-handling=error)

add_custom_command(
  OUTPUT "${_vdso_object}"
  COMMAND "${CMAKE_C_COMPILER}" ${_vdso_cflags} -MD -MF "${_vdso_object}.d" -MT "${_vdso_object}"
          -c "${_vdso_dir}/vdso.c" -o "${_vdso_object}"
  DEPENDS "${_vdso_dir}/vdso.c" "${PROJECT_SOURCE_DIR}/include/minivmm/abi/vdso_data.h"
          "${PROJECT_SOURCE_DIR}/include/minivmm/abi/abi.h" "${CMAKE_CURRENT_LIST_FILE}"
  DEPFILE "${_vdso_object}.d"
  COMMENT "vDSO: compiling vdso.c"
  VERBATIM)
# The embedded image is stripped of its static symbol table (the dynamic one
# is what programs use), as Linux's is; the unstripped twin is kept beside it.
add_custom_command(
  OUTPUT "${_vdso_linked}" "${MINIVMM_VDSO_IMAGE}"
  COMMAND "${CMAKE_C_COMPILER}" ${_vdso_ldflags} -o "${_vdso_linked}" "${_vdso_object}"
  COMMAND "${CMAKE_OBJCOPY}" --strip-all "${_vdso_linked}" "${MINIVMM_VDSO_IMAGE}"
  DEPENDS "${_vdso_object}" "${_vdso_dir}/vdso.lds" "${CMAKE_CURRENT_LIST_FILE}"
  COMMENT "vDSO: linking linux-vdso.so"
  VERBATIM)
add_custom_command(
  OUTPUT "${MINIVMM_VDSO_IMAGE_SOURCE}"
  COMMAND "${CMAKE_COMMAND}" "-DIN=${MINIVMM_VDSO_IMAGE}" "-DOUT=${MINIVMM_VDSO_IMAGE_SOURCE}"
          -P "${_vdso_dir}/embed_vdso.cmake"
  DEPENDS "${MINIVMM_VDSO_IMAGE}" "${_vdso_dir}/embed_vdso.cmake"
  COMMENT "vDSO: embedding linux-vdso.so"
  VERBATIM)
