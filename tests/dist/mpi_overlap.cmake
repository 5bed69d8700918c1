# ctest driver for the looped collective matmul under MPI: single-process `scaleinfer logits` as the
# reference, then mpirun with --overlap off and with --overlap on; on must equal the reference within TOL and
# off bit-for-bit (the chunks split the collectives, never a sum). Variables: SI, MPIEXEC, NP, MODEL, MESH,
# LAYOUT, ATTN, TOKENS, OUT, CMP, TOL.
execute_process(COMMAND ${SI} logits -m ${MODEL} --tokens ${TOKENS} --all -t 1 --out ${OUT}.ref
                RESULT_VARIABLE rc TIMEOUT 60)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "single-process logits failed: ${rc}")
endif()
foreach(mode off on)
  execute_process(COMMAND ${MPIEXEC} --oversubscribe --allow-run-as-root -np ${NP} ${SI} logits -m ${MODEL}
                          --tokens ${TOKENS} --all -t 1 --mesh ${MESH} --layout ${LAYOUT} --attention ${ATTN}
                          --overlap ${mode} --dist-verbose --out ${OUT}.${mode}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  message("${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mpirun logits --overlap ${mode} failed: ${rc}")
  endif()
endforeach()
execute_process(COMMAND ${CMP} ${OUT}.on ${OUT}.ref ${TOL} RESULT_VARIABLE rc OUTPUT_VARIABLE out TIMEOUT 30)
message("overlap on vs single process: ${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "logits differ from the single process")
endif()
execute_process(COMMAND ${CMP} ${OUT}.on ${OUT}.off 0 RESULT_VARIABLE rc OUTPUT_VARIABLE out TIMEOUT 30)
message("overlap on vs off: ${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "overlap on is not bit-identical to overlap off")
endif()
