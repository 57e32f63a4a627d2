# Configures, builds and runs tests/consumer against the library as a user would:
# installed into a temporary prefix and found with find_package (MODE=find_package),
# as a subdirectory (MODE=add_subdirectory), or installed and compiled without CMake
# with the flags pkg-config gives for cnn-gzip (MODE=pkg_config). The program reads
# GZ_FILE, a gzip IDX file of labels, so cnn::gzip must work in every mode; with CMake a
# second program decodes an image through cnn::images, and (EXPECT_ONNX) a third writes and
# reads an ONNX file through cnn::onnx.
file(REMOVE_RECURSE "${WORK_DIR}")

function(run step)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
    if(result)
        message(FATAL_ERROR "consumer (${MODE}) ${step} step failed: ${result}")
    endif()
endfunction()

if(NOT MODE STREQUAL "add_subdirectory")
    run(install ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
    foreach(file share/doc/cnn/LICENSE share/pkgconfig/cnn.pc include/cnn/version.hpp)
        if(NOT EXISTS "${WORK_DIR}/prefix/${file}")
            message(FATAL_ERROR "the install lacks ${file}")
        endif()
    endforeach()
endif()

if(MODE STREQUAL "pkg_config")
    set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig")
    execute_process(COMMAND pkg-config --cflags --libs cnn-gzip OUTPUT_VARIABLE flags RESULT_VARIABLE result
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(result)
        message(FATAL_ERROR "pkg-config --cflags --libs cnn-gzip failed: ${result}")
    endif()
    execute_process(COMMAND pkg-config --modversion cnn OUTPUT_VARIABLE version OUTPUT_STRIP_TRAILING_WHITESPACE)
    separate_arguments(flags UNIX_COMMAND "${flags}")
    file(MAKE_DIRECTORY "${WORK_DIR}/build")
    run(build ${CXX} -O2 "-DCNN_PACKAGE_VERSION=\"${version}\"" "${SOURCE_DIR}/tests/consumer/main.cpp" ${flags}
        -o "${WORK_DIR}/build/consumer")
else()
    set(consumer_args -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX})
    if(MODE STREQUAL "find_package")
        list(APPEND consumer_args "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
    else()
        list(APPEND consumer_args "-DCNN_SOURCE_DIR=${SOURCE_DIR}")
    endif()
    run(configure ${CMAKE_COMMAND} ${consumer_args})
    run(build ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
endif()
run(run "${WORK_DIR}/build/consumer" "${GZ_FILE}")
if(NOT MODE STREQUAL "pkg_config")
    run(run_images "${WORK_DIR}/build/consumer_images")
    if(EXPECT_ONNX)  # the library has cnn::onnx, so the user's project must get it too
        run(run_onnx "${WORK_DIR}/build/consumer_onnx" "${WORK_DIR}/consumer.onnx")
    endif()
endif()
