# plugins.cmake - modules for tests/c/test_plugin.c, included from
# examples/CMakeLists.txt (it also needs the example plugin, built there).
# Each bad plugin is bad_plugin.c with one variant macro.
set(TAPE_BAD_PLUGINS
  "NO_ABI:BAD_NO_ABI"
  "NO_INIT:BAD_NO_INIT"
  "ABI_ZERO:BAD_ABI=0"
  "ABI_TOO_NEW:BAD_ABI=(TAPE_PLUGIN_ABI_VERSION+1)"
  "INIT_FAILS:BAD_INIT_FAILS"
  "INIT_SILENT:BAD_INIT_SILENT"
  "INIT_SEVEN:BAD_INIT_SEVEN")
foreach(variant ${TAPE_BAD_PLUGINS})
  string(FIND "${variant}" ":" colon)
  string(SUBSTRING "${variant}" 0 ${colon} vname)
  math(EXPR after "${colon} + 1")
  string(SUBSTRING "${variant}" ${after} -1 vdef)
  string(TOLOWER "${vname}" lname)
  set(tgt tape_bad_plugin_${lname})
  add_library(${tgt} MODULE ${CMAKE_CURRENT_LIST_DIR}/bad_plugin.c)
  target_compile_definitions(${tgt} PRIVATE ${vdef})
  target_link_libraries(${tgt} PRIVATE tapestore)
  set_target_properties(${tgt} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  target_compile_definitions(test_plugin PRIVATE TAPE_BAD_PLUGIN_${vname}="$<TARGET_FILE:${tgt}>")
  add_dependencies(test_plugin ${tgt})
endforeach()

target_compile_definitions(test_plugin PRIVATE
  TAPE_EXAMPLE_PLUGIN="$<TARGET_FILE:tapestore_prefix>")
add_dependencies(test_plugin tapestore_prefix)
# test_plugin links the library statically; -rdynamic exports its tape_*
# functions so the plugins bind to that copy (one thread-local error, one
# set of registries) rather than to libtapestore.so.
set_target_properties(test_plugin PROPERTIES ENABLE_EXPORTS ON)
