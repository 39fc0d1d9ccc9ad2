#!/usr/bin/env bash
# Function and file lengths (universal-ctags): prints every function longer than
# MAX_FN lines (default 100; 120 for main) and every source file longer than MAX_FILE lines
# (default 600), then exits 1 if there were any. Usage: bash scripts/lengths.sh [dirs...]
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_FN=${MAX_FN:-100}
MAX_MAIN=${MAX_MAIN:-120}
MAX_FILE=${MAX_FILE:-600}
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(vmm hbm kv experts tokenizer engine server tools bench tests fuzz)
bad=0
files=$(git ls-files -co --exclude-standard -- "${dirs[@]}" | grep -E '\.(cc|h)$' || true)
for f in $files; do
  [ -f "$f" ] || continue
  n=$(wc -l < "$f")
  if [ "$n" -gt "$MAX_FILE" ]; then echo "file $f: $n lines (> $MAX_FILE)"; bad=1; fi
done
# ctags: kind f (function definitions) with their end line.
while IFS=$'\t' read -r name file line end; do
  len=$((end - line + 1))
  limit=$MAX_FN
  [ "$name" = main ] && limit=$MAX_MAIN
  case "$file" in tests/*) continue ;; esac  # test bodies are exempt: TEST() macros
  if [ "$len" -gt "$limit" ]; then echo "function $file:$line $name: $len lines (> $limit)"; bad=1; fi
done < <(ctags -x --_xformat='%N	%F	%n	%{end}' --kinds-C++=f --fields=+e -o - $files 2>/dev/null |
  awk -F'\t' '$4 != "" && $4 != "-"')
exit $bad
