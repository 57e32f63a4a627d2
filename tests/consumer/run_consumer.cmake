# Configures, builds and runs tests/consumer against the library, either
# installed into a temporary prefix (MODE=find_package) or as a subdirectory.
file(REMOVE_RECURSE "${WORK_DIR}")
set(consumer_args -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX})

if(MODE STREQUAL "find_package")
    execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                    RESULT_VARIABLE result)
    if(result)
        message(FATAL_ERROR "cmake --install failed: ${result}")
    endif()
    list(APPEND consumer_args "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
else()
    list(APPEND consumer_args "-DCNN_SOURCE_DIR=${SOURCE_DIR}")
endif()

foreach(step IN ITEMS configure build run)
    if(step STREQUAL "configure")
        set(command ${CMAKE_COMMAND} ${consumer_args})
    elseif(step STREQUAL "build")
        set(command ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
    else()
        set(command "${WORK_DIR}/build/consumer")
    endif()
    execute_process(COMMAND ${command} RESULT_VARIABLE result)
    if(result)
        message(FATAL_ERROR "consumer (${MODE}) ${step} step failed: ${result}")
    endif()
endforeach()
