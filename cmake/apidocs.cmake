# apidocs.cmake - the API reference (Doxygen, from the public headers):
#   target tape_apidocs   builds ${PROJECT_BINARY_DIR}/docs/api/html/index.html
#   test   apidocs        the same, failing on any doxygen warning (an
#                         undocumented public symbol is one)
#   test   apidocs_rules  proves the configuration warns on each kind of
#                         undocumented symbol
# Optional: without doxygen neither exists (scripts/setup-debian.sh and CI
# install it).
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
