# What a test needs to load our instrumented code into a program that is
# not instrumented (python3, lua5.4): with TAPE_SANITIZE, the ASan and UBSan
# runtimes preloaded, and leak checks off (the interpreters keep memory
# until they exit). Empty in other builds. Used by every test block that
# runs an interpreter (bindings/, tests/cli, tests/e2e, tests/bench).
set(TAPE_SANITIZER_PRELOAD_ENV "")
if(TAPE_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE _tape_asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE _tape_ubsan OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(TAPE_SANITIZER_PRELOAD_ENV "LD_PRELOAD=${_tape_asan}:${_tape_ubsan}" "ASAN_OPTIONS=detect_leaks=0")
endif()
