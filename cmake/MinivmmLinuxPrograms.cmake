# Ordinary static x86-64 Linux executables that minivmm runs as Linux
# programs (issue 16): the test programs (tests/linux/) and sb_static
# (src/bench/workloads/). Plain C, built with the host's C compiler against
# glibc and, where musl-gcc is installed (Debian: musl-tools), against musl;
# no warnings target and no sanitizers: they must be ordinary programs.
#
#   MINIVMM_LINUX_TEST_DIR  where every one of them is written, named
#                           <program>.glibc, <program>.musl, <program>.glibc-pie,
#                           <program>.glibc-dyn, <program>.glibc-dyn-nopie
#   MINIVMM_MUSL_GCC        musl-gcc, or ...-NOTFOUND (then no .musl builds)
#
# MINIVMM_REQUIRE_MUSL=1 (a CMake variable or the environment at configure
# time) makes a missing musl-gcc an error instead of building without musl.
set(MINIVMM_LINUX_TEST_DIR ${CMAKE_BINARY_DIR}/linux-programs)
find_program(MINIVMM_MUSL_GCC musl-gcc)
if(NOT MINIVMM_MUSL_GCC AND (MINIVMM_REQUIRE_MUSL OR "$ENV{MINIVMM_REQUIRE_MUSL}" STREQUAL "1"))
  message(FATAL_ERROR "MINIVMM_REQUIRE_MUSL=1 but musl-gcc is not installed (apt-get install musl-tools)")
endif()

set(MINIVMM_LINUX_PROGRAM_CFLAGS -std=c11 -O2 -g -Wall -Wextra -Werror)

# minivmm_linux_program(<name> SOURCES <file.c>... [INCLUDES <dir>...] [PIE]
#                       [DYNAMIC] [NOPIE_DYNAMIC] [LIBRARIES <target>...])
# Targets <name>_glibc (-static), <name>_musl (musl-gcc -static, when
# musl-gcc exists), with PIE <name>_glibc_pie (-static-pie), with DYNAMIC
# <name>_glibc_dyn (dynamically linked PIE, the compiler's default on
# Debian: an ELF with PT_INTERP) and with NOPIE_DYNAMIC <name>_glibc_dyn_nopie
# (dynamically linked ET_EXEC). LIBRARIES (shared library targets) are
# linked into the dynamic builds only.
function(minivmm_linux_program name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "PIE;DYNAMIC;NOPIE_DYNAMIC" ""
                        "SOURCES;INCLUDES;LIBRARIES")
  set(flags ${MINIVMM_LINUX_PROGRAM_CFLAGS})
  foreach(dir IN LISTS arg_INCLUDES)
    list(APPEND flags -I${dir})
  endforeach()
  set(sources "")
  foreach(src IN LISTS arg_SOURCES)
    cmake_path(ABSOLUTE_PATH src BASE_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} OUTPUT_VARIABLE abs)
    list(APPEND sources ${abs})
  endforeach()

  set(variants glibc)
  if(arg_PIE)
    list(APPEND variants glibc_pie)
  endif()
  if(arg_DYNAMIC)
    list(APPEND variants glibc_dyn)
  endif()
  if(arg_NOPIE_DYNAMIC)
    list(APPEND variants glibc_dyn_nopie)
  endif()
  if(arg_LIBRARIES AND NOT arg_DYNAMIC AND NOT arg_NOPIE_DYNAMIC)
    message(FATAL_ERROR "minivmm_linux_program ${name}: LIBRARIES need a dynamic build")
  endif()
  foreach(variant IN LISTS variants)
    set(target ${name}_${variant})
    string(REPLACE "_" "-" suffix ${variant})
    add_executable(${target} ${sources})
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${name}.${suffix}
                          RUNTIME_OUTPUT_DIRECTORY ${MINIVMM_LINUX_TEST_DIR})
    # -O2 -g after the build type's flags: the same code in every
    # configuration, as the musl build's.
    set_target_properties(${target} PROPERTIES C_STANDARD 11 C_EXTENSIONS OFF)
    target_compile_options(${target} PRIVATE ${flags})
    target_include_directories(${target} PRIVATE ${arg_INCLUDES})
    if(variant STREQUAL "glibc_pie")
      target_compile_options(${target} PRIVATE -fPIE)
      target_link_options(${target} PRIVATE -static-pie)
    elseif(variant STREQUAL "glibc_dyn")
      target_compile_options(${target} PRIVATE -fPIE)
      target_link_options(${target} PRIVATE -pie)
      target_link_libraries(${target} PRIVATE ${arg_LIBRARIES})
      # Found through LD_LIBRARY_PATH only (the case says so): no RUNPATH.
      set_target_properties(${target} PROPERTIES SKIP_BUILD_RPATH ON)
    elseif(variant STREQUAL "glibc_dyn_nopie")
      target_compile_options(${target} PRIVATE -fno-pie)
      target_link_options(${target} PRIVATE -no-pie)
      target_link_libraries(${target} PRIVATE ${arg_LIBRARIES})
      set_target_properties(${target} PROPERTIES SKIP_BUILD_RPATH ON)
    else()
      target_compile_options(${target} PRIVATE -fno-pie)
      # (clang takes -static as non-PIE and warns of an unused -no-pie)
      target_link_options(${target} PRIVATE -static $<$<C_COMPILER_ID:GNU>:-no-pie>)
    endif()
  endforeach()

  if(MINIVMM_MUSL_GCC)
    set(out ${MINIVMM_LINUX_TEST_DIR}/${name}.musl)
    file(GLOB headers LIST_DIRECTORIES false ${CMAKE_CURRENT_SOURCE_DIR}/*.h)
    foreach(dir IN LISTS arg_INCLUDES)
      file(GLOB more LIST_DIRECTORIES false ${dir}/*.h)
      list(APPEND headers ${more})
    endforeach()
    add_custom_command(OUTPUT ${out}
                       COMMAND ${CMAKE_COMMAND} -E make_directory ${MINIVMM_LINUX_TEST_DIR}
                       COMMAND ${MINIVMM_MUSL_GCC} -static ${flags} -o ${out} ${sources}
                       DEPENDS ${sources} ${headers}
                       COMMENT "Building the static musl program ${name}.musl" VERBATIM)
    add_custom_target(${name}_musl ALL DEPENDS ${out})
  endif()
endfunction()
