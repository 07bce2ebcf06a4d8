# docs.cmake - what keeps the user documentation true:
#   test   readme_example builds and runs the README's ```c block
#   target tape_apidocs   the API reference (Doxygen, from the public
#                         headers): ${PROJECT_BINARY_DIR}/docs/api/html/index.html
#   test   apidocs        the same, failing on any doxygen warning (an
#                         undocumented public symbol is one)
#   test   apidocs_rules  proves the configuration warns on each kind of
#                         undocumented symbol
# The reference is optional: without doxygen neither it nor its tests exist
# (scripts/setup-debian.sh and CI install it).

# ---------------------------------------------------------------- README
# The first ```c block of README.md is a complete program. It is extracted
# at configure time (README.md is a configure dependency) into a target
# outside `all`, which the test builds and runs: a README that does not
# compile fails its test, not everyone's build.
set(TAPE_README ${PROJECT_SOURCE_DIR}/README.md)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${TAPE_README})
file(READ ${TAPE_README} tape_readme)
string(FIND "${tape_readme}" "\n```c\n" tape_c_begin)
if(tape_c_begin LESS 0)
  message(FATAL_ERROR "README.md has no ```c block (the readme_example test compiles it)")
endif()
math(EXPR tape_c_begin "${tape_c_begin} + 6")
string(SUBSTRING "${tape_readme}" ${tape_c_begin} -1 tape_c_rest)
string(FIND "${tape_c_rest}" "\n```" tape_c_len)
string(SUBSTRING "${tape_c_rest}" 0 ${tape_c_len} tape_c_code)
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/docs/readme_example.c
     CONTENT "/* Generated from README.md at configure time: edit the README. */\n${tape_c_code}\n"
     @ONLY)
add_executable(tape-readme-example EXCLUDE_FROM_ALL ${PROJECT_BINARY_DIR}/docs/readme_example.c)
target_link_libraries(tape-readme-example PRIVATE tapestore)
if(TAPE_BUILD_TESTS)
  # Run twice in a fresh directory (the block uses filesystem:./tapes): the
  # second listing shows both recordings.
  add_test(NAME readme_example
    COMMAND sh -c "\"$0\" --build \"$1\" --target tape-readme-example >/dev/null || exit 1; rm -rf readme-cwd && mkdir readme-cwd && cd readme-cwd && \"$2\" && out=$(\"$2\") && echo \"$out\" && [ $(echo \"$out\" | grep -c ' 1 frames  session with server-everything$') -eq 2 ]"
            ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR} $<TARGET_FILE:tape-readme-example>)
endif()

# ---------------------------------------------------------------- API reference
find_package(Doxygen)
if(NOT DOXYGEN_FOUND)
  message(STATUS "doxygen not found: no tape_apidocs target, no apidocs test")
  return()
endif()

set(TAPE_APIDOCS_DIR ${PROJECT_BINARY_DIR}/docs/api)
configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${TAPE_APIDOCS_DIR}/Doxyfile @ONLY)
set(TAPE_APIDOCS_CHECK ${PROJECT_SOURCE_DIR}/cmake/apidocs-check.sh)

add_custom_target(tape_apidocs
  COMMAND ${TAPE_APIDOCS_CHECK} build ${DOXYGEN_EXECUTABLE} ${TAPE_APIDOCS_DIR}/Doxyfile
          ${TAPE_APIDOCS_DIR}/warnings.log
  DEPENDS ${PROJECT_SOURCE_DIR}/include/tapestore/tapestore.h
          ${PROJECT_SOURCE_DIR}/include/tapestore/provider.h
  COMMENT "API reference: ${TAPE_APIDOCS_DIR}/html/index.html"
  VERBATIM)

if(TAPE_BUILD_TESTS)
  add_test(NAME apidocs
    COMMAND ${TAPE_APIDOCS_CHECK} build ${DOXYGEN_EXECUTABLE} ${TAPE_APIDOCS_DIR}/Doxyfile
            ${TAPE_APIDOCS_DIR}/warnings.log)
  add_test(NAME apidocs_rules
    COMMAND ${TAPE_APIDOCS_CHECK} rules ${DOXYGEN_EXECUTABLE} ${TAPE_APIDOCS_DIR}/Doxyfile
            ${PROJECT_BINARY_DIR}/docs/apidocs-rules)
  # Both write under docs/: one at a time.
  set_tests_properties(apidocs apidocs_rules PROPERTIES RESOURCE_LOCK tape_apidocs)
endif()
