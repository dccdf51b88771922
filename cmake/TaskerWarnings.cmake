# Interface targets every tasker target links: warnings and sanitizers live
# here, never in directory-global flags.
add_library(tasker_warnings INTERFACE)
add_library(tasker::warnings ALIAS tasker_warnings)
target_compile_options(tasker_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual>)
if(TASKER_WARNINGS_AS_ERRORS)
  target_compile_options(tasker_warnings INTERFACE -Werror)
endif()

add_library(tasker_sanitize INTERFACE)
add_library(tasker::sanitize ALIAS tasker_sanitize)
if(TASKER_SANITIZE)
  target_compile_options(tasker_sanitize INTERFACE
    -fsanitize=${TASKER_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(tasker_sanitize INTERFACE -fsanitize=${TASKER_SANITIZE})
endif()
target_link_libraries(tasker_warnings INTERFACE tasker_sanitize)
