# Compiles the C++ of a markdown guide, so the guide cannot drift from the API.
#
# tasker_add_guide_snippets(<markdown file>)
#
# At configure time (and again whenever the file changes) every fenced block
# that opens with a line that is exactly ```cpp and closes with a line that is
# exactly ``` is written to ${CMAKE_BINARY_DIR}/guide_snippets/snippet_NN.cpp,
# behind a #line directive so that compiler messages point into the markdown.
# Each block is a whole translation unit: it includes what it uses.
#
#   - Blocks without `int main(` go into the OBJECT library `guide_snippets`
#     (compiled, never linked: two blocks may define the same function).
#   - A block with `int main(` becomes the executable guide_snippet_NN, which
#     `guide_snippets` depends on; with TASKER_BUILD_TESTS, ctest runs it as
#     guide.snippet_NN on the memory store and it must exit 0.
#
# Blocks in other languages (```sh, ```yaml, ```ini, ```text…) are left alone.
# The text is walked with string(FIND)/string(SUBSTRING), never as a CMake
# list, so `;` and `[`/`]` in C++ code survive untouched.

# Counts the newlines of `text` into `out`.
function(_tasker_count_newlines text out)
  string(REGEX REPLACE "[^\n]" "" newlines "${text}")
  string(LENGTH "${newlines}" n)
  set(${out} ${n} PARENT_SCOPE)
endfunction()

function(tasker_add_guide_snippets markdown)
  get_filename_component(markdown "${markdown}" ABSOLUTE)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${markdown}")
  set(out_dir "${CMAKE_BINARY_DIR}/guide_snippets")
  file(MAKE_DIRECTORY "${out_dir}")
  file(READ "${markdown}" text)

  # Invariant: `text` starts right after the end of line `line` (1-based) of
  # the file; a leading newline stands for the start of the file.
  set(text "\n${text}\n")
  set(line 0)
  set(count 0)
  set(library_sources "")
  set(programs "")
  set(written "")
  while(TRUE)
    string(FIND "${text}" "\n```" open)
    if(open EQUAL -1)
      break()
    endif()
    string(SUBSTRING "${text}" 0 ${open} skipped)
    _tasker_count_newlines("${skipped}" n)
    math(EXPR line "${line} + ${n} + 1")  # the line of the opening fence
    math(EXPR after_fence "${open} + 4")
    string(SUBSTRING "${text}" ${after_fence} -1 text)
    string(FIND "${text}" "\n" eol)
    string(SUBSTRING "${text}" 0 ${eol} info)
    string(SUBSTRING "${text}" ${eol} -1 text)  # starts with the fence line's newline
    string(FIND "${text}" "\n```\n" close)
    if(close EQUAL -1)
      message(FATAL_ERROR "${markdown}:${line}: the fenced block opened here is never closed "
                          "by a line that is exactly ```")
    endif()
    string(SUBSTRING "${text}" 1 ${close} body)  # its lines, each with its newline
    math(EXPR body_line "${line} + 1")
    _tasker_count_newlines("${body}" n)
    math(EXPR line "${line} + ${n} + 1")  # the line of the closing fence
    math(EXPR after_close "${close} + 4")
    string(SUBSTRING "${text}" ${after_close} -1 text)

    if(NOT info STREQUAL "cpp")
      continue()
    endif()
    math(EXPR count "${count} + 1")
    if(count LESS 10)
      set(id "0${count}")
    else()
      set(id "${count}")
    endif()
    set(file "${out_dir}/snippet_${id}.cpp")
    file(WRITE "${file}.tmp" "#line ${body_line} \"${markdown}\"\n${body}")
    file(COPY_FILE "${file}.tmp" "${file}" ONLY_IF_DIFFERENT)  # no rebuild when unchanged
    file(REMOVE "${file}.tmp")
    list(APPEND written "${file}")
    if(body MATCHES "int main\\(")
      list(APPEND programs ${id})
    else()
      list(APPEND library_sources "${file}")
    endif()
  endwhile()

  # Snippets of blocks that were deleted from the guide.
  file(GLOB old "${out_dir}/snippet_*.cpp")
  foreach(f IN LISTS old)
    if(NOT f IN_LIST written)
      file(REMOVE "${f}")
    endif()
  endforeach()
  if(count EQUAL 0)
    message(FATAL_ERROR "${markdown}: no ```cpp block to compile")
  endif()

  if(library_sources)
    add_library(guide_snippets OBJECT ${library_sources})
    target_link_libraries(guide_snippets PRIVATE tasker::runtime tasker::warnings)
  else()
    add_custom_target(guide_snippets)
  endif()
  foreach(id IN LISTS programs)
    add_executable(guide_snippet_${id} "${out_dir}/snippet_${id}.cpp")
    target_link_libraries(guide_snippet_${id} PRIVATE tasker::runtime tasker::warnings)
    add_dependencies(guide_snippets guide_snippet_${id})
    if(TASKER_BUILD_TESTS)
      add_test(NAME guide.snippet_${id} COMMAND guide_snippet_${id} --store=memory: --log-level=warn
        WORKING_DIRECTORY "${out_dir}")  # no stray tasker.ini from elsewhere
      set_tests_properties(guide.snippet_${id} PROPERTIES TIMEOUT 60
        ENVIRONMENT "TASKER_TEMPLATES=;TASKER_NAMESPACES=")
    endif()
  endforeach()
  list(LENGTH programs n_programs)
  message(STATUS "docs: ${count} C++ snippets in ${markdown} (${n_programs} with main)")
endfunction()
