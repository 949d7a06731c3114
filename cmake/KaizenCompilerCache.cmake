# Use ccache when it is installed. Precompiled headers need the sloppiness settings below, or ccache
# refuses to cache the translation units that use them.
find_program(KAIZEN_CCACHE ccache)
if(KAIZEN_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # CCACHE_BASEDIR makes paths inside the checkout relative, so a fresh clone elsewhere (CI) hits the cache.
  set(_kaizen_launcher ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}"
      ${KAIZEN_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_kaizen_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_kaizen_launcher})
endif()
