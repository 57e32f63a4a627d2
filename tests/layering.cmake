# Headers depend downwards only: each header of include/cnn/ may include headers of its own
# level or below in this list, never above (docs/ARCHITECTURE.md, "Headers, from the bottom
# up"). Run as: cmake -DINCLUDE_DIR=.../include -P layering.cmake
set(levels
    "error.hpp version.hpp"
    "tensor.hpp random.hpp geometry.hpp"
    "scratch.hpp parameters.hpp reference/"
    "kernels/"
    "context.hpp layer.hpp"
    "layers/"
    "graph/ network.hpp"
    "loss.hpp optimizer.hpp gradient_check.hpp distributed.hpp mpi.hpp"
    "data/ io/file.hpp"
    "train.hpp"
    "io/model.hpp io/checkpoint.hpp onnx.hpp onnx_import.hpp"
    "cnn.hpp reference.hpp")

# The level of a header (a path under include/cnn/), or -1 when no level names it.
function(level_of header out)
    set(index 0)
    foreach(entries IN LISTS levels)
        string(REPLACE " " ";" entries "${entries}")
        foreach(entry IN LISTS entries)
            if(header STREQUAL entry OR (entry MATCHES "/$" AND header MATCHES "^${entry}"))
                set(${out} ${index} PARENT_SCOPE)
                return()
            endif()
        endforeach()
        math(EXPR index "${index} + 1")
    endforeach()
    set(${out} -1 PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}/cnn" "${INCLUDE_DIR}/cnn/*.hpp")
set(problems "")
foreach(header IN LISTS headers)
    level_of("${header}" own)
    if(own EQUAL -1)
        string(APPEND problems "${header}: no level in tests/layering.cmake\n")
        continue()
    endif()
    file(STRINGS "${INCLUDE_DIR}/cnn/${header}" lines REGEX "^#include \"cnn/")
    foreach(line IN LISTS lines)
        string(REGEX REPLACE "^#include \"cnn/([^\"]+)\".*" "\\1" included "${line}")
        level_of("${included}" theirs)
        if(theirs GREATER own)
            string(APPEND problems "${header} (level ${own}) includes ${included} (level ${theirs})\n")
        endif()
    endforeach()
endforeach()
list(LENGTH headers count)
if(NOT problems STREQUAL "")
    message(FATAL_ERROR "headers that depend upwards:\n${problems}")
endif()
message(STATUS "${count} headers, every include downwards")
