# Helpers shared by tests/, bench/ and examples/ (not installed).
#
#   kaizen_add_test(<name> <src>... [LABELS <label>...] [NO_PCH] [LINK <target>...])
#   kaizen_add_bench(<name> <src>... [NO_PCH] [LINK <target>...])
#   kaizen_add_example(<name> <src>...)
#
# LINK names the kaizen targets a program uses (default: kaizen::kaizen, i.e. everything with LibTorch).
# A torch-free program says `LINK kaizen::core` (or kaizen::reward, kaizen::tokenizers) and NO_PCH: it then
# compiles without LibTorch's headers and links no LibTorch or CUDA library. Programs that link
# kaizen::kaizen also link kaizen::kernels when it exists.
#
# Project code gets -Wall -Wextra -Wpedantic -Werror; third-party headers come in as system includes
# through their imported targets, so their warnings do not fail the build. Targets that include
# LibTorch share one precompiled header (LibTorch headers dominate compile time on small machines).

add_library(kaizen_project_options INTERFACE)
target_compile_options(kaizen_project_options INTERFACE
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang>>:-Wall -Wextra -Wpedantic -Werror>
  # GCC 12 flags designated initializers that leave members at their defaults, which is exactly how
  # kaizen's option aggregates are meant to be used ({.epsilon = 1e-4}).
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wno-missing-field-initializers>)
if(KAIZEN_SANITIZE)
  target_compile_options(kaizen_project_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>
    # GCC's flow analysis under the sanitizers reports uninitialised members inside LibTorch's own
    # headers (c10::intrusive_ptr in std::optional<at::Generator>): a known false positive.
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wno-maybe-uninitialized>)
  target_link_options(kaizen_project_options INTERFACE -fsanitize=address,undefined)
endif()

# One PCH per kind of program; consumers REUSE_FROM it, so it is compiled once.
function(_kaizen_pch_target name)
  if(TARGET ${name})
    return()
  endif()
  set(src ${CMAKE_BINARY_DIR}/pch/${name}.cpp)
  file(CONFIGURE OUTPUT ${src} CONTENT "// precompiled-header carrier for ${name}\n")
  add_library(${name} OBJECT ${src})
  target_link_libraries(${name} PRIVATE kaizen::kaizen kaizen_project_options ${ARGN})
  if(TARGET kaizen::kernels)   # same macro values as the programs that reuse this PCH
    target_link_libraries(${name} PRIVATE kaizen::kernels)
  endif()
  target_precompile_headers(${name} PRIVATE
    <torch/torch.h> <vector> <string> <span> <random> <optional> <algorithm> <cmath>)
  kaizen_pch_cache_key(${name})
endfunction()

# ccache (with CCACHE_BASEDIR, so fresh clones hit) would hand a precompiled header built in one checkout to
# another, and GCC 12 crashes loading it (an internal compiler error seen in a fresh clone). A macro holding
# the absolute build folder, which ccache does not rewrite, keeps each folder's PCH its own; the programs that
# reuse a PCH must define it too (GCC refuses a PCH built with a macro the program lacks).
function(kaizen_pch_cache_key target)
  target_compile_definitions(${target} PRIVATE "KAIZEN_PCH_BUILD_DIR=\"${CMAKE_BINARY_DIR}\"")
endfunction()

# The libraries a program links: its LINK list (default kaizen::kaizen), plus the kernels for LibTorch users.
function(_kaizen_link_libraries name)
  if(NOT ARGN)
    set(ARGN kaizen::kaizen)
  endif()
  target_link_libraries(${name} PRIVATE ${ARGN} kaizen_project_options)
  if(TARGET kaizen::kernels AND ("kaizen::kaizen" IN_LIST ARGN OR "kaizen::torch" IN_LIST ARGN))
    target_link_libraries(${name} PRIVATE kaizen::kernels)
  endif()
endfunction()

function(kaizen_add_test name)
  cmake_parse_arguments(ARG "NO_PCH" "TIMEOUT" "LABELS;LINK" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  find_package(Catch2 2.13 REQUIRED)
  # Catch2's package adds its folder to CMAKE_MODULE_PATH only on the first find, and only in this
  # function's scope, so include Catch.cmake by path.
  include(${Catch2_DIR}/Catch.cmake)
  # ctest discovery splits Catch2's test list as a CMake list: a test name holding ';', '[' or ']'
  # silently swallows every test after it into one. Refuse such names at configure time.
  foreach(src IN LISTS ARG_UNPARSED_ARGUMENTS)
    file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/${src} _bad REGEX "TEST_CASE\\(\"[^\"]*[];[]")
    if(_bad)
      message(FATAL_ERROR "${src}: Catch2 test names must not contain ';', '[' or ']' (ctest discovery "
                          "breaks on them): ${_bad}")
    endif()
  endforeach()
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  _kaizen_link_libraries(${name} ${ARG_LINK})
  target_link_libraries(${name} PRIVATE Catch2::Catch2WithMain)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  if(NOT ARG_NO_PCH)
    _kaizen_pch_target(kaizen_test_pch Catch2::Catch2)
    target_precompile_headers(${name} REUSE_FROM kaizen_test_pch)
    kaizen_pch_cache_key(${name})
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS cpu)
  endif()
  # Catch2 v2 has no SKIP(): a test that cannot run here prints KAIZEN_SKIP and ctest reports Skipped.
  catch_discover_tests(${name} TEST_PREFIX "${name}:"
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT} SKIP_REGULAR_EXPRESSION "KAIZEN_SKIP")
endfunction()

function(kaizen_add_bench name)
  cmake_parse_arguments(ARG "NO_PCH" "" "LINK" ${ARGN})
  find_package(benchmark REQUIRED)
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  _kaizen_link_libraries(${name} ${ARG_LINK})
  target_link_libraries(${name} PRIVATE benchmark::benchmark nlohmann_json::nlohmann_json)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/bench)   # <support/figures.hpp>
  set_property(GLOBAL APPEND PROPERTY KAIZEN_BENCHMARKS ${name})           # for the kaizen_benchmarks target
  if(NOT ARG_NO_PCH)
    _kaizen_pch_target(kaizen_bench_pch benchmark::benchmark)
    target_precompile_headers(${name} REUSE_FROM kaizen_bench_pch)
    kaizen_pch_cache_key(${name})
  endif()
endfunction()

function(kaizen_add_example name)
  add_executable(${name} ${ARGN})
  _kaizen_link_libraries(${name})
  _kaizen_pch_target(kaizen_example_pch)
  target_precompile_headers(${name} REUSE_FROM kaizen_example_pch)
  kaizen_pch_cache_key(${name})
endfunction()

# --- kaizen::distributed: data-parallel loops over LibTorch's c10d (Gloo on CPU, NCCL where built) ---------
# The torch wheel ships c10d's headers but not Gloo's, which ProcessGroupGloo.hpp includes (and declares the
# class only) under USE_C10D_GLOO; Debian's libgloo-dev provides them. The Gloo symbols themselves are inside
# libtorch_cpu, so nothing more is linked. NCCL (ProcessGroupNCCL.hpp, under USE_C10D_NCCL) needs nccl.h, from
# the wheel's nvidia-nccl package, and a CUDA build of LibTorch. Without LibTorch or Gloo's headers the target is
# not made and tests/distributed registers nothing.
if(TARGET kaizen_torch AND NOT TARGET kaizen_distributed)
  find_path(KAIZEN_GLOO_INCLUDE_DIR gloo/allreduce.h DOC "Gloo's headers (Debian: libgloo-dev)")
  if(KAIZEN_GLOO_INCLUDE_DIR)
    add_library(kaizen_distributed INTERFACE)
    add_library(kaizen::distributed ALIAS kaizen_distributed)
    set_target_properties(kaizen_distributed PROPERTIES EXPORT_NAME distributed)
    target_include_directories(kaizen_distributed SYSTEM INTERFACE ${KAIZEN_GLOO_INCLUDE_DIR})
    target_compile_definitions(kaizen_distributed INTERFACE USE_C10D_GLOO)
    target_link_libraries(kaizen_distributed INTERFACE kaizen)
    if(TARGET torch_cuda AND Torch_DIR)
      find_path(KAIZEN_NCCL_INCLUDE_DIR nccl.h
                HINTS "${Torch_DIR}/../../../../nvidia/nccl/include" ENV NCCL_HOME PATH_SUFFIXES include
                DOC "NCCL's headers (the torch wheel's nvidia-nccl package, or a CUDA toolkit)")
      if(KAIZEN_NCCL_INCLUDE_DIR)
        target_include_directories(kaizen_distributed SYSTEM INTERFACE ${KAIZEN_NCCL_INCLUDE_DIR})
        target_compile_definitions(kaizen_distributed INTERFACE USE_C10D_NCCL)
      endif()
    endif()
    list(APPEND _kaizen_library_targets kaizen_distributed)
  else()
    message(STATUS "kaizen: Gloo's headers (libgloo-dev) not found; kaizen::distributed is not defined")
  endif()
endif()

# --- kaizen::objectives: policy-gradient and preference losses chosen at run time (TRL's names), precompiled ------
# A STATIC library holding the instantiations of policy_gradient::policy_loss for every objective a config can
# name, the preference losses and the config parser (src/objectives/). A consumer includes only
# <kaizen/objectives/runtime.hpp> (the tensor type, no LibTorch operators, no objective templates) and links it.
if(TARGET kaizen_torch AND NOT TARGET kaizen_objectives)
  add_library(kaizen_objectives STATIC
    ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/config.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_loss.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_token.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_sequence.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_geometric.cpp
    ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/preference_loss.cpp)
  add_library(kaizen::objectives ALIAS kaizen_objectives)
  set_target_properties(kaizen_objectives PROPERTIES EXPORT_NAME objectives POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(kaizen_objectives PUBLIC kaizen_torch PRIVATE $<BUILD_INTERFACE:kaizen_project_options>)
  # ~200 instantiations of policy_loss: thin glue between LibTorch calls (the arithmetic runs inside LibTorch), so
  # they are compiled at -O1 to keep the library's build short. Appended last, it overrides the build type's -O.
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    set_source_files_properties(
      ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_token.cpp
      ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_sequence.cpp
      ${CMAKE_CURRENT_LIST_DIR}/../src/objectives/policy_geometric.cpp
      TARGET_DIRECTORY kaizen_objectives PROPERTIES COMPILE_OPTIONS -O1)
  endif()
  list(APPEND _kaizen_library_targets kaizen_objectives)
endif()

# --- kaizen::remote: samplers that call inference servers over HTTP (remote/), through libcurl ------------------
# Debian: libcurl4-openssl-dev. Without it the target is not made and tests/remote registers nothing.
if(NOT TARGET kaizen_remote)
  find_package(CURL QUIET)
  if(CURL_FOUND)
    add_library(kaizen_remote INTERFACE)
    add_library(kaizen::remote ALIAS kaizen_remote)
    set_target_properties(kaizen_remote PROPERTIES EXPORT_NAME remote)
    target_link_libraries(kaizen_remote INTERFACE kaizen_core CURL::libcurl)
  else()
    message(STATUS "kaizen: libcurl not found; kaizen::remote is not defined (scripts/setup.sh installs it)")
  endif()
endif()
