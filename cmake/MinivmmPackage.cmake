# CPack: one Debian package, `minivmm`, with everything `cmake --install`
# puts in place (libraries, headers, CMake and pkg-config files, tools, guest
# SDK and images, documentation). Build it from a tree configured with
# -DCMAKE_INSTALL_PREFIX=/usr (so that LIBDIR is Debian's multiarch
# lib/x86_64-linux-gnu):
#
#   cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build -j2
#   (cd build && cpack -G DEB)
#
# Dependencies: the run-time ones (libc6, libstdc++6, libgcc-s1, libfmt9,
# libspdlog1.10, libseccomp2) are computed by dpkg-shlibdeps from the ELF
# files; the headers need the -dev packages of what they include (spdlog,
# which brings fmt, and the kernel's linux/kvm.h), the installed CMake package
# finds fmt and spdlog, and libseccomp with pkg-config (pkgconf), and the
# static library needs libseccomp's (libseccomp-dev; minivmm.pc names it in
# Requires.private). libseccomp2 at 2.5 at least: dpkg-shlibdeps sees the
# functions used (2.3), not the filter attributes (SCMP_FLTATR_API_SYSRAWRC
# is 2.5's). The guest SDK needs a C compiler, objcopy and CMake.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME minivmm)
set(CPACK_PACKAGE_VENDOR "minivmm developers")
set(CPACK_PACKAGE_CONTACT "minivmm developers <dev@minivmm.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "C++20 virtual machine monitor library over /dev/kvm")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/LICENSE")
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The extended description; the synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "libminivmm drives Linux /dev/kvm directly: guest RAM, vCPU threads, memory
 slots with dirty logging, a paravirtual block device and a small hypercall
 ABI. This package holds the shared and static library, its headers with
 CMake and pkg-config files, the minivmm-run and minivmm-bench tools, and the
 freestanding guest SDK with a CMake helper to build guest images.")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# shlibs "libminivmm 0 minivmm (= VERSION-RELEASE)": 0.x promises no stable
# ABI under SONAME libminivmm.so.0, so a program built against this package
# needs exactly this package.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libseccomp2 (>= 2.5), libfmt-dev, libspdlog-dev, libseccomp-dev, linux-libc-dev, pkgconf | pkg-config")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "cmake, gcc, g++, binutils")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# ldconfig runs through dpkg's trigger (CPack's postinst/postrm also call it).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${PROJECT_SOURCE_DIR}/packaging/debian/triggers")

# Debian wants a changelog in the package's doc folder. Installed only into
# /usr, i.e. by the Debian package (gzip -n: no time stamp in it).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  configure_file(packaging/debian/changelog.in "${PROJECT_BINARY_DIR}/debian/changelog" @ONLY)
  execute_process(COMMAND gzip -9nc "${PROJECT_BINARY_DIR}/debian/changelog"
                  OUTPUT_FILE "${PROJECT_BINARY_DIR}/debian/changelog.Debian.gz"
                  RESULT_VARIABLE _gzip_rc)
  if(NOT _gzip_rc EQUAL 0)
    message(FATAL_ERROR "gzip of the Debian changelog failed")
  endif()
  install(FILES "${PROJECT_BINARY_DIR}/debian/changelog.Debian.gz" DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()

include(CPack)
