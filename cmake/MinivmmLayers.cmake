# libminivmm's layers (README "Architecture"): each one an object library
# that links only the layers below it, and sees only their headers, so an
# upward #include fails to compile. The order, bottom first:
#
#   base     errors, fds and mappings, logging, histograms, RCU, seccomp, the guest ABI
#   kvm      the KVM ioctls: system, VM, vCPU, slots, dirty rings
#   memory   RAM blocks, regions, address spaces, the KVM slot tables, dirty logging
#   boot     guest images, the boot plan, page tables and descriptor tables
#   vcpu     the exit loop, the I/O bus it dispatches to, exit counts
#   devices  hypercalls, consoles, the block device
#   program  an unmodified Linux program in ring 3: its process, memory map, system calls
#   vm       Vm: the parts composed, the event loop, RAM hotplug
#   control  the control socket and its client
#
# Each layer's public headers (include/minivmm) and private ones (src/LAYER)
# are linked into a folder of its own under the build tree; a layer's
# include path is its folder and those of the layers below. Every public
# header must belong to exactly one layer (checked here), so a new header
# needs a decision about where it sits.
include_guard(GLOBAL)

set(MINIVMM_LAYERS base kvm memory boot vcpu devices program vm control)
set(_minivmm_layer_root "${CMAKE_BINARY_DIR}/layers")
set(_minivmm_assigned_headers "")

# minivmm_layer(NAME SOURCES src... HEADERS name.hpp... [BELOW layer...])
function(minivmm_layer name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "SOURCES;HEADERS;BELOW")
  set(root "${_minivmm_layer_root}/${name}")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}/include/minivmm" "${root}/src")
  foreach(h IN LISTS ARG_HEADERS)
    set(src "${PROJECT_SOURCE_DIR}/include/minivmm/${h}")
    if(NOT EXISTS "${src}")
      message(FATAL_ERROR "layer ${name}: no header include/minivmm/${h}")
    endif()
    if(h IN_LIST _minivmm_assigned_headers)
      message(FATAL_ERROR "layer ${name}: include/minivmm/${h} already belongs to another layer")
    endif()
    list(APPEND _minivmm_assigned_headers "${h}")
    file(CREATE_LINK "${src}" "${root}/include/minivmm/${h}" SYMBOLIC)
  endforeach()
  set(_minivmm_assigned_headers "${_minivmm_assigned_headers}" PARENT_SCOPE)
  if(IS_DIRECTORY "${PROJECT_SOURCE_DIR}/src/${name}")
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/src/${name}" "${root}/src/${name}" SYMBOLIC)
  endif()

  add_library(minivmm_${name} OBJECT ${ARG_SOURCES})
  set_target_properties(minivmm_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_include_directories(minivmm_${name} PUBLIC "${root}/include" "${root}/src")
  foreach(below IN LISTS ARG_BELOW)
    target_link_libraries(minivmm_${name} PUBLIC minivmm_${below})
  endforeach()
  target_link_libraries(minivmm_${name} PUBLIC spdlog::spdlog
                        PRIVATE fmt::fmt Boost::headers nlohmann_json::nlohmann_json
                                Threads::Threads minivmm_warnings)
endfunction()

# After every minivmm_layer(): each public header has a layer.
function(minivmm_check_layers)
  file(GLOB all RELATIVE "${PROJECT_SOURCE_DIR}/include/minivmm"
       "${PROJECT_SOURCE_DIR}/include/minivmm/*.hpp")
  foreach(h IN LISTS all)
    if(NOT h IN_LIST _minivmm_assigned_headers)
      message(FATAL_ERROR "include/minivmm/${h} belongs to no layer: add it to one in "
                          "CMakeLists.txt (cmake/MinivmmLayers.cmake explains the layers)")
    endif()
  endforeach()
endfunction()

# The tools (minivmm-run, minivmm-ctl, minivmm-bench) sit on top of the
# library and use its public headers only: their include folder links their
# own sources' folders (src/cli, src/bench, and the test support src/testing)
# and nothing of src/'s layers.
function(minivmm_tools_include_dir out)
  set(root "${_minivmm_layer_root}/tools")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}")
  foreach(dir cli bench testing)
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/src/${dir}" "${root}/${dir}" SYMBOLIC)
  endforeach()
  set(${out} "${root}" PARENT_SCOPE)
endfunction()
