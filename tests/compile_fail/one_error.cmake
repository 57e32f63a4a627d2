# Compiles tests/compile_fail/not_a_layer.cpp once per case with COMPILER: each must
# fail with exactly one error, the static_assert's sentence of the composite that holds
# the stray argument.
foreach(case 1 2 3 4 5 6 7 8 9)
    if(case EQUAL 9)
        set(sentence "cnn::fit: this network ends in cnn::Softmax")
    elseif(case EQUAL 7)
        set(sentence "cnn::Residual: the body and the shortcut must be layers")
    elseif(case EQUAL 8)
        set(sentence "cnn::Parallel: every branch must be a layer")
    else()
        set(sentence "cnn::Sequential: every argument must be a layer")
    endif()
    execute_process(COMMAND ${COMPILER} -std=c++20 -fsyntax-only -I${INCLUDE_DIR} -DNOT_A_LAYER_CASE=${case}
                            ${SOURCE}
                    RESULT_VARIABLE result ERROR_VARIABLE output OUTPUT_VARIABLE stdout)
    string(APPEND output "${stdout}")
    # ": error:" (a diagnostic), not the "system_error:41" of an include trace
    string(REGEX MATCHALL ": error:" errors "${output}")
    list(LENGTH errors count)
    if(result EQUAL 0 OR NOT count EQUAL 1 OR NOT output MATCHES "${sentence}")
        message(FATAL_ERROR "case ${case}: ${count} errors, not the one sentence:\n${output}")
    endif()
endforeach()
