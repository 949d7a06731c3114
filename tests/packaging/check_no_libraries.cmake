# ctest helper: fail when the binary links a shared library whose name matches PATTERN (ldd's view).
#   cmake -DBINARY=<path> -DPATTERN=<regex> -P check_no_libraries.cmake
execute_process(COMMAND ldd ${BINARY} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ldd ${BINARY} failed (${rc})")
endif()
message("${out}")
string(REGEX MATCHALL "[^\n]*(${PATTERN})[^\n]*" hits "${out}")
if(hits)
  message(FATAL_ERROR "${BINARY} links libraries it must not (${PATTERN}):\n${hits}")
endif()
