# Compiles SOURCE with COMPILER: it must fail with exactly one error, which contains SENTENCE.
execute_process(COMMAND ${COMPILER} -std=c++20 -fsyntax-only -I${INCLUDE_DIR} ${SOURCE}
                RESULT_VARIABLE result ERROR_VARIABLE output OUTPUT_VARIABLE stdout)
string(APPEND output "${stdout}")
string(REGEX MATCHALL ": error:" errors "${output}")
list(LENGTH errors count)
if(result EQUAL 0 OR NOT count EQUAL 1 OR NOT output MATCHES "${SENTENCE}")
    message(FATAL_ERROR "${SOURCE}: ${count} errors, not the one sentence \"${SENTENCE}\":\n${output}")
endif()
