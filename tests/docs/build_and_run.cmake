# ctest helper for the documentation snippets: build one target of the build tree, then run it if RUN is set.
#   cmake -DBUILD_DIR=<build> -DTARGET=<target> [-DRUN=<binary>] -P build_and_run.cmake
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the documentation snippet ${TARGET} does not compile (exit ${rc})")
endif()
if(RUN)
  execute_process(COMMAND ${RUN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the documentation snippet ${TARGET} exited with ${rc}")
  endif()
endif()
