# ctest driver: `--layout auto` under mpirun reads network.json from $XDG_CACHE_HOME. A private cache
# directory gets a roofline (the 'local' hardware) and, per MODE, a network.json:
#   good     -> the planner note names the measured network (1.25 GB/s) and the file;
#   corrupt  -> a clear fallback message naming the file, and the run still succeeds;
#   missing  -> "network not measured (run `mpirun -np 2 scaleinfer netbench`)".
# Variables: SI, MPIEXEC, MODEL, DIR, MODE.
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR}/scaleinfer)
file(WRITE ${DIR}/scaleinfer/roofline.json
     "{\"name\": \"local\", \"peak_flops\": {\"f32\": 1e11}, \"mem_bw\": 1e10, \"mem_capacity\": 1e10}")
if(MODE STREQUAL "good")
  file(WRITE ${DIR}/scaleinfer/network.json
       "{\"link_bw\": 1.25e9, \"step_latency_s\": 7.5e-6, \"ranks\": 2, \"measured_at\": \"2026-01-02T03:04:05Z\"}")
  set(expect "network measured by netbench on 2 ranks at 2026-01-02T03:04:05Z: 1.25 GB/s per rank, 7.5 us per step \\(${DIR}/scaleinfer/network.json\\)")
elseif(MODE STREQUAL "corrupt")
  file(WRITE ${DIR}/scaleinfer/network.json "{\"link_bw\": 1.25e9, \"step_lat")
  set(expect "ignoring ${DIR}/scaleinfer/network.json: not a JSON object \\(run `mpirun -np 2 scaleinfer netbench` again\\): assuming 4 GB/s, 5 us per step")
else()
  set(expect "network not measured \\(run `mpirun -np 2 scaleinfer netbench`\\): assuming 4 GB/s")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env XDG_CACHE_HOME=${DIR}
                        ${MPIEXEC} --oversubscribe --allow-run-as-root -np 2 ${SI} logits -m ${MODEL} --tokens 1,2,3
                        -t 1 --dist-verbose --out ${DIR}/logits.f32
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mpirun logits failed: ${rc}")
endif()
if(NOT "${out}${err}" MATCHES "layout auto \\(planner, hardware 'local', ${expect}")
  message(FATAL_ERROR "expected the planner note to say: ${expect}")
endif()
