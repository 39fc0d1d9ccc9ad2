#!/usr/bin/env bash
# Every binary in tools/ against a table of bad command lines: each must exit 2 (a bad command
# line, tools/flag_checks.h) without starting anything, naming the flag on stderr. A generous
# timeout per case only catches a binary that started work instead of refusing. Then --help
# exits 0 and lists the exit codes.
# usage: bad_flags.sh BINDIR WORKDIR
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
mkfifo "$work/fifo"
touch "$work/file"
fails=0
# binary # arguments (word-split) # what stderr must name
cases=$(cat <<EOF
elasticmoe#--settle_s=-1#--settle_s
elasticmoe#--settle_s=nan#--settle_s
elasticmoe#--settle_s=inf#--settle_s
elasticmoe#--methods=#--methods
elasticmoe#--methods=elastic,,horizontal#--methods
elasticmoe#--methods=nope#--methods
elasticmoe#--methods=cold-restart-no-p2p#--methods
elasticmoe#--max_devices=1000#--max_devices
elasticmoe#--max_devices=0#--max_devices
elasticmoe#--device_mb=17592186044416#--device_mb
elasticmoe#--schedule=2#--schedule
elasticmoe#--schedule=2,x#--schedule
elasticmoe#--schedule=2,300#--schedule
elasticmoe#--schedule=2,8 --max_devices=7#--schedule
elasticmoe#--window_s=0#--window_s
elasticmoe#--repeat=0#--repeat
elasticmoe#--settle_s=2#--settle_s
elasticmoe#--settle_s=4 --window_s=2.5#--window_s
elasticmoe#--schedule=0,2#--schedule
elasticmoe#--concurrency=0#--concurrency
elasticmoe#--concurrency=abc#--concurrency
elasticmoe#--prompt_tokens=-1#--prompt_tokens
elasticmoe#--output_tokens=0#--output_tokens
elasticmoe#--compute_share=0#--compute_share
elasticmoe#--compute_share=1.5#--compute_share
elasticmoe#--preset=nope#--preset
elasticmoe#--model=$work/nope#--model
elasticmoe#--model=$work/file#--model
elasticmoe#--out_dir=#--out_dir
elasticmoe#--out_dir=$work/file#--out_dir
elasticmoe#--hmmd_socket=$work/file#--hmmd_socket
elasticmoe#--hmmd_binary=$work/file#--hmmd_binary
elasticmoe#--instance_binary=$work/nope#--instance_binary
elasticmoe#--copy_threads=-1#--copy_threads
elasticmoe#--page_size=huge#--page_size
elasticmoe#--nodes=0,a#--nodes
elasticmoe#--no_such_flag=1#--no_such_flag
elasticmoe#--settle_s#--settle_s
elasticmoe#stray#stray
emoe#--preset=tiny --prompt=x --temperature=-1#--temperature
emoe#--preset=tiny --prompt=x --temperature=nan#--temperature
emoe#--preset=tiny --prompt=x --top_p=0#--top_p
emoe#--preset=tiny --prompt=x --top_p=2#--top_p
emoe#--preset=tiny --prompt=x --max_new_tokens=0#--max_new_tokens
emoe#--preset=tiny --prompt=a||b#--prompt
emoe#--preset=tiny --prompt=x --devices=0#--devices
emoe#--preset=tiny --prompt=x --devices=65#--devices
emoe#--preset=tiny --prompt=x --block_tokens=0#--block_tokens
emoe#--preset=tiny --prompt=x --max_tokens_per_step=0#--max_tokens_per_step
emoe#--preset=tiny --prompt=x --max_batch=-1#--max_batch
emoe#--preset=tiny --prompt=x --compute_share=0#--compute_share
emoe#--preset=tiny --prompt=x --threads_per_device=0#--threads_per_device
emoe#--preset=tiny --prompt=x --threads_per_device=2 --compute_share=0.5#--threads_per_device
emoe#--preset=tiny --prompt=x --json=$work/nope/report.json#--json
emoe#--preset=tiny --prompt=x --hmmd_socket=$work/file#--hmmd_socket
emoe#--preset=nope --prompt=x#--preset
emoe#--model=$work/nope --prompt=x#--model
emoe#--prompt=x#--model
emoe#--preset=tiny#--prompt
emoe#--preset=tiny --workload=nonsense#--workload
emoe#--preset=tiny --workload=synthetic --num_requests=-1#--num_requests
emoe#--preset=tiny --workload=synthetic --rate=0#--rate
emoe#--preset=tiny --workload=synthetic --max_prompt_tokens=0#--max_prompt_tokens
emoe#--preset=tiny --workload=synthetic --max_output_tokens=0#--max_output_tokens
emoe#--preset=tiny --workload=trace --trace=$work/file --time_scale=-2#--time_scale
emoe#--preset=tiny --workload=trace --trace=$work/fifo#--trace
emoe#--preset=tiny --workload=trace --trace=$work/nope#--trace
emoe#--preset=tiny --prompt=x --seed=-1#--seed
emoe#--preset=tiny --prompt=x --kv_mb=x#--kv_mb
emoe#--preset=tiny --workload=synthetic --chat#--chat
hmmd#--copy_threads=-1#--copy_threads
hmmd#--devices_per_node=0#--devices_per_node
hmmd#--queue_depth=0#--queue_depth
hmmd#--chunk_kb=6#--chunk_kb
hmmd#--progress_interval_s=nan#--progress_interval_s
hmmd#--max_clients=0#--max_clients
hmmd#--max_clients_per_peer=100#--max_clients_per_peer
hmmd#--handshake_timeout_s=0#--handshake_timeout_s
hmmd#--idle_timeout_s=nan#--idle_timeout_s
hmmd#--weights_mb=17592186044416#--weights_mb
hmmd#--page_size=huge#--page_size
hmmd#--populate=maybe#--populate
hmmd#--no_such_flag#--no_such_flag
hmmd#stray#stray
gen_model#--out=$work/m --dtype=f16#--dtype
gen_model#--out=$work/m --preset=nope#--preset
gen_model#--out=$work/m --max_shard_mb=0#--max_shard_mb
gen_model#--out=$work/m --seed=x#--seed
gen_model##--out
gen_model#--out=$work/m --preset=qwen3-text --tokenizer_dir=$work/nope#--tokenizer_dir
gen_model#--out=$work/m --preset=mixtral-text --tokenizer_dir=$work/file#--tokenizer_dir
gen_model#--out=$work/m --preset=qwen3-text --tokenizer_dir=$work#scripts/fetch_tokenizers.sh
host_doctor#--dir=$work/nope#--dir
host_doctor#--dir=$work/file#--dir
host_doctor#--json=2#--json
host_doctor#stray#stray
tokenize##--tokenizer
tokenize#--tokenizer=$work/nope#--tokenizer
tokenize#--tokenizer=$work/fifo#--tokenizer
tokenize#--tokenizer=$work#--tokenizer
tokenize#--tokenizer=$work/file --chat_template=llama3#--chat_template
tokenize#--tokenizer=$work/file --chat --decode#--chat
tokenize#--tokenizer=$work/file --jsonl=maybe#--jsonl
tokenize#--tokenizer=$work/file --no_such_flag#--no_such_flag
tokenize#--tokenizer=$work/file stray#stray
EOF
)
while IFS='#' read -r b args want; do
  # shellcheck disable=SC2086  # the arguments are word-split on purpose
  set +e
  timeout 60 "$bin/$b" $args >"$work/out" 2>"$work/err"
  rc=$?
  set -e
  if [ "$rc" != 2 ] || ! grep -qF -- "$want" "$work/err"; then
    echo "FAIL: $b $args: exit $rc (want 2), stderr does not name '$want':"
    cat "$work/err"
    fails=$((fails + 1))
  fi
done <<<"$cases"
for b in elasticmoe emoe hmmd gen_model host_doctor tokenize; do
  set +e
  "$bin/$b" --help >"$work/out" 2>&1
  rc=$?
  set -e
  if [ "$rc" != 0 ] || ! grep -q "exit codes" "$work/out"; then
    echo "FAIL: $b --help: exit $rc (want 0) or no 'exit codes' in it"
    fails=$((fails + 1))
  fi
done
[ "$fails" = 0 ] || { echo "$fails bad command lines were not refused as they should be"; exit 1; }
echo "bad flags: $(wc -l <<<"$cases") cases refused with exit 2, naming the flag"
