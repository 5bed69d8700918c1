# ctest driver: single-process `scaleinfer logits` as the reference, then the same under mpirun with a mesh
# and layout, then compare_logits. Variables: SI, MPIEXEC, NP, MODEL, MESH, LAYOUT, ATTN, TOKENS, OUT, CMP, TOL,
# optional DECODE. TOKENS: one sequence "1,2,3", or several separated by '|' ("1,2,3|4,5|6,7,8,9"), run as one
# batch (a --tokens per sequence); DECODE: greedy decode steps after the prefill (logits --decode).
string(REPLACE "|" ";" seqs "${TOKENS}")
set(args)
foreach(s IN LISTS seqs)
  list(APPEND args --tokens ${s})
endforeach()
if(DEFINED DECODE)
  list(APPEND args --decode ${DECODE})
endif()
execute_process(COMMAND ${SI} logits -m ${MODEL} ${args} --all -t 1 --out ${OUT}.ref
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "single-process logits failed: ${rc}")
endif()
execute_process(COMMAND ${MPIEXEC} --oversubscribe --allow-run-as-root -np ${NP} ${SI} logits -m ${MODEL}
                        ${args} --all -t 1 --mesh ${MESH} --layout ${LAYOUT} --attention ${ATTN}
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
