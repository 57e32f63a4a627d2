# The README's install, `cmake -S . -B build && cmake --install build`, on a machine
# without the test dependencies (hidden from CMake here): it must configure, default to
# a Release build, and install the headers.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build"
                        -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON
                        -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
                RESULT_VARIABLE result)
if(result)
    message(FATAL_ERROR "configuring without the test dependencies failed: ${result}")
endif()
file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" build_type REGEX "^CMAKE_BUILD_TYPE:")
if(NOT build_type MATCHES "=Release$")
    message(FATAL_ERROR "the default build type is not Release: ${build_type}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${WORK_DIR}/build" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE result)
if(result OR NOT EXISTS "${WORK_DIR}/prefix/include/cnn/cnn.hpp")
    message(FATAL_ERROR "installing without the test dependencies failed: ${result}")
endif()
