# tape_install_rpath(TARGET DIR): TARGET, installed into DIR (relative to
# CMAKE_INSTALL_PREFIX, or absolute), finds libtapestore in the library
# directory through an $ORIGIN-relative RUNPATH, so an install under any
# prefix works without LD_LIBRARY_PATH. One definition for every installed
# program and module (the command, the proxy, the conformance runner, the
# Python and Lua modules).
function(tape_install_rpath target dir)
  foreach(pair "from;${dir}" "lib;${CMAKE_INSTALL_LIBDIR}")
    list(GET pair 0 name)
    list(GET pair 1 path)
    if(IS_ABSOLUTE "${path}")
      set(_${name} "${path}")
    else()
      set(_${name} "${CMAKE_INSTALL_PREFIX}/${path}")
    endif()
  endforeach()
  file(RELATIVE_PATH _rel "${_from}" "${_lib}")
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN/${_rel}")
endfunction()
