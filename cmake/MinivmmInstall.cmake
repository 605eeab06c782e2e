# What `cmake --install` (and so the .deb) puts where, all relative to the
# prefix in the GNUInstallDirs places, so any --prefix works:
#
#   LIBDIR/libminivmm.so.0.1.0, .so.0, .so, libminivmm.a
#   LIBDIR/cmake/minivmm/       minivmmConfig*.cmake, minivmmTargets*.cmake
#   LIBDIR/pkgconfig/minivmm.pc
#   LIBDIR/minivmm/guest-images/  the example and benchmark guest images (.bin)
#   INCLUDEDIR/minivmm/         the public headers
#   BINDIR/                     minivmm-run, minivmm-ctl, minivmm-bench, minivmm-bare-run
#   DATADIR/minivmm/guest/      the guest SDK: sdk/ (headers, start.S,
#                               guest.ld, C sources), cmake/MinivmmGuest.cmake,
#                               examples/, README.md
#   DOCDIR/                     README.md, LICENSE, copyright, html/ (API
#                               reference, with MINIVMM_BUILD_DOCS)
include(CMakePackageConfigHelpers)

set(MINIVMM_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/minivmm")
set(MINIVMM_INSTALL_GUEST_DIR "${CMAKE_INSTALL_DATADIR}/minivmm/guest")
set(MINIVMM_INSTALL_GUEST_SDK_DIR "${MINIVMM_INSTALL_GUEST_DIR}/sdk")

# Libraries and headers.
install(TARGETS minivmm minivmm_static EXPORT minivmmTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/minivmm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Tools. minivmm-bench finds minivmm-run and minivmm-bare-run next to itself
# and, installed, its guest images in MINIVMM_INSTALL_GUEST_IMAGES_DIR.
install(TARGETS minivmm-run minivmm-ctl minivmm-bench minivmm-bare-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Guest images: the SDK examples and what minivmm-bench runs, as flat
# binaries (what the tools load; the .elf twins would only be ELF files that
# are no host programs). Machine code, hence under LIBDIR, not DATADIR.
set(MINIVMM_INSTALLED_GUESTS hello smp hcloop regloop tscloop sb_cpu sb_memory sb_mutex sb_threads
                             sb_fileio)
foreach(_guest IN LISTS MINIVMM_INSTALLED_GUESTS)
  get_target_property(_bin guest_${_guest} MINIVMM_GUEST_BIN)
  install(FILES "${_bin}" DESTINATION ${MINIVMM_INSTALL_GUEST_IMAGES_DIR})
endforeach()

# The guest SDK, laid out as in the source tree so that MinivmmGuest.cmake
# finds sdk/ next to its own folder.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/guest/sdk/ DESTINATION ${MINIVMM_INSTALL_GUEST_SDK_DIR})
# The SDK's copy of the ABI headers (the same files as include/minivmm/abi),
# so that an installed SDK is self-contained.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/minivmm/abi
        DESTINATION ${MINIVMM_INSTALL_GUEST_SDK_DIR}/include/minivmm)
install(FILES ${PROJECT_SOURCE_DIR}/guest/cmake/MinivmmGuest.cmake DESTINATION ${MINIVMM_INSTALL_GUEST_DIR}/cmake)
install(FILES ${PROJECT_SOURCE_DIR}/guest/examples/hello.c ${PROJECT_SOURCE_DIR}/guest/examples/smp.c
        DESTINATION ${MINIVMM_INSTALL_GUEST_DIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/guest/README.md DESTINATION ${MINIVMM_INSTALL_GUEST_DIR})

# Documentation. `copyright` is LICENSE under the name Debian looks for.
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)
# The README links these as docs/NAME.md: the same layout installed.
install(FILES ${PROJECT_SOURCE_DIR}/docs/architecture.md ${PROJECT_SOURCE_DIR}/docs/guest-abi.md
              ${PROJECT_SOURCE_DIR}/docs/benchmarks.md DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

# CMake package: find_package(minivmm CONFIG) gives minivmm::minivmm (shared)
# and minivmm::minivmm_static; COMPONENTS guest adds minivmm_add_guest().
install(EXPORT minivmmTargets NAMESPACE minivmm:: DESTINATION ${MINIVMM_INSTALL_CMAKEDIR})
configure_package_config_file(
  cmake/minivmmConfig.cmake.in "${PROJECT_BINARY_DIR}/minivmmConfig.cmake"
  INSTALL_DESTINATION ${MINIVMM_INSTALL_CMAKEDIR}
  PATH_VARS MINIVMM_INSTALL_GUEST_DIR MINIVMM_INSTALL_GUEST_SDK_DIR
            MINIVMM_INSTALL_GUEST_IMAGES_DIR)
# 0.x: minor versions may break the API, so only the same minor version is
# compatible.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/minivmmConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/minivmmConfig.cmake"
              "${PROJECT_BINARY_DIR}/minivmmConfigVersion.cmake"
        DESTINATION ${MINIVMM_INSTALL_CMAKEDIR})

# pkg-config: relocatable (prefix found from the .pc file's own folder), so
# it is right under whatever prefix the tree is installed to.
file(RELATIVE_PATH _pc_to_prefix "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" _pc_to_prefix "${_pc_to_prefix}")
set(MINIVMM_PC_PREFIX "\${pcfiledir}/${_pc_to_prefix}")
configure_file(cmake/minivmm.pc.in "${PROJECT_BINARY_DIR}/minivmm.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/minivmm.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
