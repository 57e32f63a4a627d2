# Writes ONNX files with export_onnx (EXPORT) into WORK_DIR, then runs ONNX's Python checker
# on them (scripts/onnx_check.py, CHECK, with PYTHON). Run as cmake -P.
file(REMOVE_RECURSE "${WORK_DIR}")
foreach(step export check)
    if(step STREQUAL "export")
        set(command "${EXPORT}" "${WORK_DIR}")
    else()
        set(command "${PYTHON}" "${CHECK}" "${WORK_DIR}")
    endif()
    execute_process(COMMAND ${command} RESULT_VARIABLE result)
    if(result)
        message(FATAL_ERROR "onnx_check: the ${step} step failed: ${result}")
    endif()
endforeach()
