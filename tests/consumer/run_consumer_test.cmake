# Installs a built drcnn into a scratch prefix, then configures, builds and runs the consumer
# project in tests/consumer against it through find_package(drcnn CONFIG). Any failing step
# is a FATAL_ERROR that shows the step's output.
#
#   cmake -DDRCNN_BUILD_DIR=<drcnn build dir> -DDRCNN_SOURCE_DIR=<drcnn source dir>
#         -DWORK_DIR=<scratch dir> [-DCMAKE_CXX_COMPILER=<c++>] [-DCMAKE_BUILD_TYPE=Release]
#         [-DCUDAToolkit_ROOT=<toolkit dir>] [-DCUDNN_ROOT=<cudnn dir>]
#         -P run_consumer_test.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var DRCNN_BUILD_DIR DRCNN_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer_test.cmake: pass -D${var}=...")
  endif()
endforeach()
if(NOT DEFINED CMAKE_BUILD_TYPE OR CMAKE_BUILD_TYPE STREQUAL "")
  set(CMAKE_BUILD_TYPE Release)
endif()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# run(<step name> <command...>): runs the command, echoes its output, fails on non-zero exit.
function(run step)
  message(STATUS "consumer test: ${step}: ${ARGN}")
  execute_process(COMMAND ${ARGN}
                  RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: step '${step}' failed (exit ${rc})\n"
                        "--- stdout ---\n${out}\n--- stderr ---\n${err}")
  endif()
  message(STATUS "consumer test: ${step}: ok\n${out}${err}")
endfunction()

run(install "${CMAKE_COMMAND}" --install "${DRCNN_BUILD_DIR}" --prefix "${prefix}")

set(configure_args
  -S "${DRCNN_SOURCE_DIR}/tests/consumer"
  -B "${consumer_build}"
  -G Ninja
  "-DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}"
  "-DCMAKE_PREFIX_PATH=${prefix}"
  "-DDRCNN_EXAMPLES_DIR=${DRCNN_SOURCE_DIR}/examples")
foreach(var CMAKE_CXX_COMPILER CUDAToolkit_ROOT CUDNN_ROOT)
  if(DEFINED ${var} AND NOT "${${var}}" STREQUAL "")
    list(APPEND configure_args "-D${var}=${${var}}")
  endif()
endforeach()

run(configure "${CMAKE_COMMAND}" ${configure_args})
run(build "${CMAKE_COMMAND}" --build "${consumer_build}")
run(run "${consumer_build}/drcnn_consumer")
# examples/detect_image.cpp on the converted MMDetection golden (tests/data/checkpoints) and a
# test image: it must load, detect and draw.
set(ckpt "${DRCNN_SOURCE_DIR}/tests/data/checkpoints")
run(detect_image "${consumer_build}/detect_image" "${ckpt}/mmdet_tiny.yaml" "${ckpt}/mmdet_tiny.safetensors"
    "${DRCNN_SOURCE_DIR}/tests/data/datasets/images/rgb8.png" "${WORK_DIR}/detect_image.png" 0.5)
if(NOT EXISTS "${WORK_DIR}/detect_image.png")
  message(FATAL_ERROR "consumer test: detect_image wrote no ${WORK_DIR}/detect_image.png")
endif()
