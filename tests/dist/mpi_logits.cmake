# ctest driver: single-process `scaleinfer logits` as the reference, then the same under mpirun with a mesh
# and layout, then compare_logits. Variables: SI, MPIEXEC, NP, MODEL, MESH, LAYOUT, ATTN, TOKENS, OUT, CMP, TOL.
execute_process(COMMAND ${SI} logits -m ${MODEL} --tokens ${TOKENS} --all -t 1 --out ${OUT}.ref
                RESULT_VARIABLE rc TIMEOUT 60)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "single-process logits failed: ${rc}")
endif()
execute_process(COMMAND ${MPIEXEC} --oversubscribe --allow-run-as-root -np ${NP} ${SI} logits -m ${MODEL}
                        --tokens ${TOKENS} --all -t 1 --mesh ${MESH} --layout ${LAYOUT} --attention ${ATTN}
                        --dist-verbose --out ${OUT}.mpi
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mpirun logits failed: ${rc}")
endif()
execute_process(COMMAND ${CMP} ${OUT}.mpi ${OUT}.ref ${TOL} RESULT_VARIABLE rc OUTPUT_VARIABLE out TIMEOUT 30)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "logits differ")
endif()
