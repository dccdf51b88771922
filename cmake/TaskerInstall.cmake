# Installing tasker: the libraries and headers, a CMake package
# (find_package(tasker CONFIG) gives tasker::core, tasker::messages,
# tasker::actors, tasker::runtime_model and tasker::runtime) and a pkg-config
# file for C users of the ABI (tasker-core.pc). tests/install builds a
# consumer project against the installed files.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TASKER_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/tasker")

set_target_properties(tasker_runtime_model PROPERTIES EXPORT_NAME runtime_model)
set_target_properties(tasker_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(tasker_actors PROPERTIES EXPORT_NAME actors)
set_target_properties(tasker_messages PROPERTIES EXPORT_NAME messages)
set_target_properties(tasker_core PROPERTIES EXPORT_NAME core)
set_target_properties(tasker_warnings PROPERTIES EXPORT_NAME warnings)
set_target_properties(tasker_sanitize PROPERTIES EXPORT_NAME sanitize)

# The static libraries list their private dependencies (spdlog, yaml-cpp…)
# as link-only: the package config finds them again. tasker::warnings and
# tasker::sanitize come along for the same reason; a consumer's compile
# flags are its own (they reach only what links them directly).
install(TARGETS tasker_core tasker_messages tasker_actors tasker_runtime_model tasker_runtime
                tasker_warnings tasker_sanitize
  EXPORT tasker-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Headers: <tasker/core.h>, <tasker/messages/…>, <tasker/actors/…>,
# <tasker/runtime/…>. The testing header of the core is not installed.
foreach(module core messages actors runtime)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${module}/include/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp" PATTERN "core_testing.h" EXCLUDE)
endforeach()
if(TASKER_GENERATED_INCLUDE_DIR)
  install(DIRECTORY ${TASKER_GENERATED_INCLUDE_DIR}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()

install(EXPORT tasker-targets NAMESPACE tasker:: DESTINATION ${TASKER_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tasker-config.cmake.in
  ${PROJECT_BINARY_DIR}/tasker-config.cmake INSTALL_DESTINATION ${TASKER_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tasker-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tasker-config.cmake
              ${PROJECT_BINARY_DIR}/tasker-config-version.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
  DESTINATION ${TASKER_INSTALL_CMAKEDIR})

configure_file(${PROJECT_SOURCE_DIR}/cmake/tasker-core.pc.in ${PROJECT_BINARY_DIR}/tasker-core.pc
  @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tasker-core.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
