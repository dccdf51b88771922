# FindCAF.cmake — Debian's libcaf-dev (0.17.6) installs headers and shared
# libraries but no CMake package config and no pkg-config file. This module
# finds them and defines the imported targets newer CAF releases export
# (CAF::core, CAF::io, CAF::openssl), so our CMake code needs no change when
# CAF is upgraded.
#
#   find_package(CAF 0.17 REQUIRED COMPONENTS core io)
include(FindPackageHandleStandardArgs)
find_package(Threads REQUIRED)

find_path(CAF_INCLUDE_DIR caf/config.hpp)
if(CAF_INCLUDE_DIR)
  # config.hpp carries the version as one number: major*10000 + minor*100 + patch.
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _tk_caf_line REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX MATCH "[0-9]+$" _tk_caf_num "${_tk_caf_line}")
  if(_tk_caf_num)
    math(EXPR _tk_major "${_tk_caf_num} / 10000")
    math(EXPR _tk_minor "(${_tk_caf_num} % 10000) / 100")
    math(EXPR _tk_patch "${_tk_caf_num} % 100")
    set(CAF_VERSION "${_tk_major}.${_tk_minor}.${_tk_patch}")
  endif()
endif()

if(NOT CAF_FIND_COMPONENTS)
  set(CAF_FIND_COMPONENTS core)
endif()
set(CAF_LIBRARIES)
foreach(_tk_comp IN LISTS CAF_FIND_COMPONENTS)
  find_library(CAF_${_tk_comp}_LIBRARY caf_${_tk_comp})
  if(NOT CAF_${_tk_comp}_LIBRARY)
    set(CAF_${_tk_comp}_FOUND FALSE)
    continue()
  endif()
  set(CAF_${_tk_comp}_FOUND TRUE)
  list(APPEND CAF_LIBRARIES "${CAF_${_tk_comp}_LIBRARY}")
  if(NOT TARGET CAF::${_tk_comp})
    add_library(CAF::${_tk_comp} UNKNOWN IMPORTED)
    set_target_properties(CAF::${_tk_comp} PROPERTIES
      IMPORTED_LOCATION "${CAF_${_tk_comp}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES Threads::Threads)
    if(NOT _tk_comp STREQUAL "core")
      # io and openssl are built on core.
      set_property(TARGET CAF::${_tk_comp} APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::core)
    endif()
  endif()
endforeach()

find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR CAF_LIBRARIES
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)
mark_as_advanced(CAF_INCLUDE_DIR)
