# cmake -P script: gen_model + emoe end to end.
function(run out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
run(gen ${GEN} --preset=tiny --out=${WORK}/tiny --seed=7)
run(one ${EMOE} --model=${WORK}/tiny "--prompt=The quick brown fox|MoE" --max_new_tokens=12
    --devices=1 --page_size=4k)
run(three ${EMOE} --model=${WORK}/tiny "--prompt=The quick brown fox|MoE" --max_new_tokens=12
    --devices=3 --page_size=4k)
string(REGEX MATCHALL "\\[[0-9]\\] tokens:[0-9 ]*" t1 "${one}")
string(REGEX MATCHALL "\\[[0-9]\\] tokens:[0-9 ]*" t3 "${three}")
list(LENGTH t1 n)
if(NOT n EQUAL 2 OR NOT t1 STREQUAL t3)
  message(FATAL_ERROR "tokens differ between 1 and 3 devices:\n${t1}\n${t3}")
endif()
# The trace ships in the repository (data/traces/): a missing one is a failure, not a fallback.
if(NOT EXISTS ${TRACE})
  message(FATAL_ERROR "no trace at ${TRACE}")
endif()
set(trace_args --workload=trace --trace=${TRACE} --num_requests=16 --time_scale=50)
run(rep ${EMOE} --model=${WORK}/tiny ${trace_args} --devices=2 --page_size=4k
    --max_prompt_tokens=64 --max_output_tokens=16 --json=${WORK}/report.json)
file(READ ${WORK}/report.json json)
string(JSON requests GET "${json}" requests)
string(JSON p50 GET "${json}" ttft_ms p50)
if(NOT requests EQUAL 16)
  message(FATAL_ERROR "report has ${requests} requests:\n${json}")
endif()
message(STATUS "1 and 3 devices agree: ${t1}; workload ttft p50 ${p50} ms")

# A truncated checkpoint is refused with an error naming the file; nothing is served.
file(COPY ${WORK}/tiny/ DESTINATION ${WORK}/cut)
file(SIZE ${WORK}/cut/model.safetensors size)
math(EXPR half "${size} / 2")
execute_process(COMMAND truncate -s ${half} ${WORK}/cut/model.safetensors)
execute_process(COMMAND ${EMOE} --model=${WORK}/cut --prompt=x --page_size=4k
  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "DATA_LOSS.*model.safetensors")
  message(FATAL_ERROR "a truncated checkpoint was not refused clearly (${rc}): ${err}")
endif()
message(STATUS "truncated checkpoint refused: ${err}")
