# minivmm_add_guest(NAME SOURCES src... [INCLUDE_DIRS dir...])
#
# Builds ${MINIVMM_GUEST_DIR}/<NAME>.elf and <NAME>.bin (objcopy -O binary of
# the ELF) from the sources plus the guest SDK, through a custom target
# guest_<NAME> that is part of ALL. See guest/README.md.
#
# The compiler is invoked directly with add_custom_command and a fixed flag
# list, never through add_executable: that way nothing from the host build
# (CMAKE_<LANG>_FLAGS, sanitizers, coverage, global add_compile_options or
# definitions) reaches the guest images.
include_guard(GLOBAL)

if(CMAKE_VERSION VERSION_LESS 3.20)
  message(FATAL_ERROR "minivmm guests need CMake >= 3.20 (DEPFILE for all generators)")
endif()

# Record depfiles the modern way (paths made relative by CMake for Ninja).
# Functions keep the policies in force where they are defined.
if(POLICY CMP0116)
  cmake_policy(SET CMP0116 NEW)
endif()

# The SDK is written for C and compiled with the C compiler (also the .S
# files); C++ guests need the C++ compiler. Only the compilers are used.
foreach(_mvg_lang C CXX)
  if(NOT CMAKE_${_mvg_lang}_COMPILER_LOADED)
    enable_language(${_mvg_lang})
  endif()
endforeach()

if(NOT CMAKE_OBJCOPY)
  find_program(CMAKE_OBJCOPY NAMES objcopy llvm-objcopy REQUIRED)
endif()

if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  message(FATAL_ERROR "minivmm guests need an x86-64 host compiler "
                      "(CMAKE_SYSTEM_PROCESSOR=${CMAKE_SYSTEM_PROCESSOR})")
endif()

# The SDK: MINIVMM_GUEST_SDK_DIR if set (find_package(minivmm COMPONENTS
# guest) sets it), else sdk/ next to this file's folder, which is where it is
# both in the source tree (guest/cmake, guest/sdk) and in an installed prefix
# (share/minivmm/guest/cmake, share/minivmm/guest/sdk).
if(MINIVMM_GUEST_SDK_DIR)
  get_filename_component(_mvg_sdk "${MINIVMM_GUEST_SDK_DIR}" REALPATH)
else()
  get_filename_component(_mvg_sdk "${CMAKE_CURRENT_LIST_DIR}/../sdk" REALPATH)
endif()
foreach(_mvg_file start.S entry.c hypercall.c console.c string.c guest.ld include/mvg/mvg.h)
  if(NOT EXISTS "${_mvg_sdk}/${_mvg_file}")
    message(FATAL_ERROR "minivmm guest SDK not found: ${_mvg_sdk}/${_mvg_file} is missing "
                        "(set MINIVMM_GUEST_SDK_DIR to the SDK folder)")
  endif()
endforeach()
# The ABI's C headers (minivmm/abi/*.h), shared with the VMM: inside an
# installed SDK a copy is in its include/, in the source tree they are in the
# top-level include/ (guest/sdk/../../include).
set(_mvg_abi "")
foreach(_mvg_dir "${_mvg_sdk}/include" "${_mvg_sdk}/../../include")
  if(NOT _mvg_abi AND EXISTS "${_mvg_dir}/minivmm/abi/abi.h")
    get_filename_component(_mvg_abi "${_mvg_dir}" REALPATH)
  endif()
endforeach()
if(NOT _mvg_abi)
  message(FATAL_ERROR "minivmm guest ABI headers not found: no minivmm/abi/abi.h in "
                      "${_mvg_sdk}/include or ${_mvg_sdk}/../../include")
endif()
set(_MVG_ABI_INCLUDE_DIR "${_mvg_abi}" CACHE INTERNAL "minivmm guest ABI headers")
set(_MVG_SDK_DIR "${_mvg_sdk}" CACHE INTERNAL "minivmm guest SDK")
set(_MVG_CMAKE_FILE "${CMAKE_CURRENT_LIST_FILE}" CACHE INTERNAL "")

if(NOT DEFINED MINIVMM_GUEST_DIR)
  set(MINIVMM_GUEST_DIR "${CMAKE_BINARY_DIR}/guest-images")
endif()

# The compilers' own freestanding headers (stdint.h, stddef.h, stdarg.h, ...)
# replace the default include path, so no libc header can sneak in.
function(_mvg_compiler_include out compiler)
  execute_process(COMMAND "${compiler}" -print-file-name=include
                  OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT IS_DIRECTORY "${dir}")
    message(FATAL_ERROR "cannot find the freestanding headers of ${compiler}")
  endif()
  set(${out} "${dir}" PARENT_SCOPE)
endfunction()
_mvg_compiler_include(_MVG_C_SYSINC "${CMAKE_C_COMPILER}")
_mvg_compiler_include(_MVG_CXX_SYSINC "${CMAKE_CXX_COMPILER}")

# libgcc (or compiler-rt builtins) for helpers the compiler may call on its own
# (128-bit division, popcount without -mpopcnt, ...). Static and OS-free.
execute_process(COMMAND "${CMAKE_C_COMPILER}" -print-libgcc-file-name
                OUTPUT_VARIABLE _MVG_LIBGCC OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT EXISTS "${_MVG_LIBGCC}")
  set(_MVG_LIBGCC "")
endif()

# Flags for every guest translation unit. Why each one:
#   -ffreestanding -fno-builtin   no hosted libc semantics; main is not special
#   -nostdinc + -isystem          only the compiler's freestanding headers
#   -fno-pie -fno-pic -mcmodel=small   fixed load address below 2 GiB, no GOT
#   -fno-stack-protector -fno-stack-clash-protection   no canary/probe runtime
#   -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-exceptions
#                                 no .eh_frame (no unwinder in the guest)
#   -fcf-protection=none          no endbr64/CET notes (nothing enforces them)
#   -U_FORTIFY_SOURCE             distro default would want glibc's *_chk
#   -ffunction-sections -fdata-sections   with --gc-sections: small images
#   -O2 -g0                       fast, and nothing to strip
set(_MVG_COMMON_FLAGS
  -ffreestanding -fno-builtin -nostdinc
  -fno-pie -fno-pic -mcmodel=small
  -fno-stack-protector -fno-stack-clash-protection
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-exceptions
  -fcf-protection=none -U_FORTIFY_SOURCE
  -ffunction-sections -fdata-sections
  -O2 -g0 -Wall -Wextra -Werror)
set(_MVG_C_FLAGS -std=gnu11 ${_MVG_COMMON_FLAGS} -isystem "${_MVG_C_SYSINC}")
# -nostdinc++/-fno-rtti: no libstdc++; -fno-threadsafe-statics: no
# __cxa_guard_* runtime (function-local statics are not vCPU safe!).
set(_MVG_CXX_FLAGS -std=gnu++20 ${_MVG_COMMON_FLAGS} -nostdinc++ -fno-rtti
  -fno-threadsafe-statics -isystem "${_MVG_CXX_SYSINC}")
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  set(_MVG_NO_PIE_LINK -no-pie)
else()
  set(_MVG_NO_PIE_LINK "")
endif()
# .S files: preprocessed by the C compiler; code-generation flags do not apply
# (clang would reject them as unused under -Werror).
set(_MVG_ASM_FLAGS -nostdinc -Wall -Werror -Wa,--noexecstack)
# -static: ET_EXEC, no interpreter, no dynamic section. (-no-pie too for gcc,
# whose distro builds default to PIE; clang flags it as unused.)
set(_MVG_LINK_FLAGS
  -nostdlib -static
  "-Wl,-T,${_MVG_SDK_DIR}/guest.ld"
  -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096
  -Wl,--gc-sections -Wl,--orphan-handling=error ${_MVG_NO_PIE_LINK})

set(_MVG_SDK_SOURCES
  "${_MVG_SDK_DIR}/start.S" "${_MVG_SDK_DIR}/entry.c" "${_MVG_SDK_DIR}/hypercall.c"
  "${_MVG_SDK_DIR}/console.c" "${_MVG_SDK_DIR}/string.c")
# Sources that implement mem*/str*: the compiler must not recognise their loops
# as memcpy/memset and call them recursively (gcc's loop distribution; clang
# already honours -fno-builtin).
set(_MVG_NOLIBCALL_SOURCES "${_MVG_SDK_DIR}/string.c")
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  set(_MVG_NOLIBCALL_FLAGS -fno-tree-loop-distribute-patterns)
else()
  set(_MVG_NOLIBCALL_FLAGS "")
endif()

# Cached (internal) so the function works from any directory, whichever scope
# included this file.
foreach(_mvg_var _MVG_C_SYSINC _MVG_CXX_SYSINC _MVG_LIBGCC _MVG_C_FLAGS _MVG_CXX_FLAGS
        _MVG_ASM_FLAGS _MVG_LINK_FLAGS _MVG_SDK_SOURCES _MVG_NOLIBCALL_SOURCES
        _MVG_NOLIBCALL_FLAGS)
  set(${_mvg_var} "${${_mvg_var}}" CACHE INTERNAL "")
endforeach()

function(minivmm_add_guest NAME)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "SOURCES;INCLUDE_DIRS")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "minivmm_add_guest(${NAME}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "minivmm_add_guest(${NAME}): no SOURCES")
  endif()

  set(out_dir "${MINIVMM_GUEST_DIR}")
  if(NOT out_dir)
    set(out_dir "${CMAKE_BINARY_DIR}/guest-images")
  endif()
  set(obj_dir "${CMAKE_CURRENT_BINARY_DIR}/guest-obj/${NAME}")
  file(MAKE_DIRECTORY "${out_dir}" "${obj_dir}")
  set(elf "${out_dir}/${NAME}.elf")
  set(bin "${out_dir}/${NAME}.bin")

  set(inc_flags "-I${_MVG_SDK_DIR}/include")
  if(NOT _MVG_ABI_INCLUDE_DIR STREQUAL "${_MVG_SDK_DIR}/include")
    list(APPEND inc_flags "-I${_MVG_ABI_INCLUDE_DIR}")
  endif()
  foreach(dir IN LISTS ARG_INCLUDE_DIRS)
    get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND inc_flags "-I${dir}")
  endforeach()

  # Headers listed explicitly as well as via depfiles: the depfile covers
  # everything a source includes once it has been built.
  file(GLOB sdk_headers CONFIGURE_DEPENDS "${_MVG_SDK_DIR}/include/mvg/*.h"
       "${_MVG_ABI_INCLUDE_DIR}/minivmm/abi/*.h")

  set(objs "")
  set(idx 0)
  foreach(src IN LISTS _MVG_SDK_SOURCES ARG_SOURCES)
    get_filename_component(src "${src}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    get_filename_component(base "${src}" NAME)
    get_filename_component(ext "${src}" LAST_EXT)
    # Numbered so equal file names from different folders do not collide.
    set(obj "${obj_dir}/${idx}-${base}.o")
    math(EXPR idx "${idx} + 1")
    if(ext STREQUAL ".c")
      set(cc "${CMAKE_C_COMPILER}")
      set(flags ${_MVG_C_FLAGS})
    elseif(ext MATCHES "^\\.(cc|cpp|cxx|C)$")
      set(cc "${CMAKE_CXX_COMPILER}")
      set(flags ${_MVG_CXX_FLAGS})
    elseif(ext MATCHES "^\\.(S|s)$")
      set(cc "${CMAKE_C_COMPILER}")
      set(flags ${_MVG_ASM_FLAGS})
    else()
      message(FATAL_ERROR "minivmm_add_guest(${NAME}): unsupported source ${src}")
    endif()
    if(src IN_LIST _MVG_NOLIBCALL_SOURCES)
      list(APPEND flags ${_MVG_NOLIBCALL_FLAGS})
    endif()
    add_custom_command(
      OUTPUT "${obj}"
      COMMAND "${cc}" ${flags} ${inc_flags} -MD -MF "${obj}.d" -MT "${obj}"
              -c "${src}" -o "${obj}"
      DEPENDS "${src}" ${sdk_headers} "${_MVG_CMAKE_FILE}"
      DEPFILE "${obj}.d"
      COMMENT "Guest ${NAME}: compiling ${base}"
      VERBATIM)
    list(APPEND objs "${obj}")
  endforeach()

  add_custom_command(
    OUTPUT "${elf}" "${bin}"
    COMMAND "${CMAKE_C_COMPILER}" ${_MVG_LINK_FLAGS} "-Wl,-Map,${obj_dir}/${NAME}.map"
            -o "${elf}" ${objs} ${_MVG_LIBGCC}
    COMMAND "${CMAKE_OBJCOPY}" -O binary "${elf}" "${bin}"
    DEPENDS ${objs} "${_MVG_SDK_DIR}/guest.ld" "${_MVG_CMAKE_FILE}"
    COMMENT "Guest ${NAME}: linking ${NAME}.elf and ${NAME}.bin"
    VERBATIM)

  add_custom_target(guest_${NAME} ALL DEPENDS "${elf}" "${bin}")
  set_target_properties(guest_${NAME} PROPERTIES
    MINIVMM_GUEST_ELF "${elf}" MINIVMM_GUEST_BIN "${bin}")

  # One target that builds every guest, for tests to depend on.
  if(NOT TARGET minivmm_guests)
    add_custom_target(minivmm_guests)
  endif()
  add_dependencies(minivmm_guests guest_${NAME})
  set_property(GLOBAL APPEND PROPERTY MINIVMM_GUESTS ${NAME})
endfunction()
