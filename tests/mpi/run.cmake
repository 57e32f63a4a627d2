# Data-parallel training over Open MPI (ctest runs this): the model of 1, 2 and 3 ranks is the
# model of one process without MPI, byte for byte; a rank that hangs or dies stops the job
# with an error in bounded time. Run as:
#   cmake -DPROGRAM=train_ranks -DMPIEXEC=mpiexec -DWORK_DIR=dir -P run.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
# Loopback only, more ranks than cores, and root allowed (CI runs as root).
set(launch "${MPIEXEC}" --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo)

execute_process(COMMAND "${PROGRAM}" "${WORK_DIR}/alone.cnn" --alone RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT status EQUAL 0)
    message(FATAL_ERROR "train_ranks --alone failed (${status}): ${out}")
endif()
file(SHA256 "${WORK_DIR}/alone.cnn" alone)
foreach(ranks 1 2 3)
    execute_process(COMMAND ${launch} -np ${ranks} "${PROGRAM}" "${WORK_DIR}/ranks-${ranks}.cnn"
                    RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 300)
    if(NOT status EQUAL 0)
        message(FATAL_ERROR "mpirun -np ${ranks} train_ranks failed (${status}): ${out}")
    endif()
    file(SHA256 "${WORK_DIR}/ranks-${ranks}.cnn" hash)
    if(NOT hash STREQUAL alone)
        message(FATAL_ERROR "the model of ${ranks} rank(s) differs from the model of one process")
    endif()
    message(STATUS "${ranks} rank(s): the same model as one process (${out})")
endforeach()

# A rank that hangs: the others give up after the timeout (2 s) and the job ends.
string(TIMESTAMP started "%s")
execute_process(COMMAND ${launch} -np 2 "${PROGRAM}" "${WORK_DIR}/hang.cnn" --hang 1 --timeout 2000
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 120)
string(TIMESTAMP ended "%s")
math(EXPR seconds "${ended} - ${started}")
if(status EQUAL 0 OR NOT out MATCHES "rank 0: [^\n]*rank 1[^\n]* within 2000 ms")
    message(FATAL_ERROR "a hanging rank 1 did not stop rank 0 with a timeout error (${status}): ${out}")
endif()
if(EXISTS "${WORK_DIR}/hang.cnn")
    message(FATAL_ERROR "a run whose rank 1 hung saved a model")
endif()
message(STATUS "a hanging rank: the job stopped with an error after ${seconds} s")

# A rank that dies: mpirun ends the job with an error.
string(TIMESTAMP started "%s")
execute_process(COMMAND ${launch} -np 3 "${PROGRAM}" "${WORK_DIR}/die.cnn" --die 2 --timeout 2000
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 120)
string(TIMESTAMP ended "%s")
math(EXPR seconds "${ended} - ${started}")
if(status EQUAL 0 OR EXISTS "${WORK_DIR}/die.cnn")
    message(FATAL_ERROR "a dead rank 2 did not stop the job (${status}): ${out}")
endif()
message(STATUS "a dead rank: the job stopped with an error after ${seconds} s")
