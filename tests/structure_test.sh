#!/usr/bin/env bash
# The architecture's rules, checked: only engine/, train/ and compress/ include llama.cpp or
# ggml headers; apps/ stays thin; no source file over ~800 lines.
set -u
root="$1"
fails=0
bad=$(grep -rlE '#include <(llama|ggml|gguf)[^>]*\.h>' "$root/src" "$root/apps" 2>/dev/null |
  grep -vE "/src/(engine|train|compress)/" || true)
if [ -n "$bad" ]; then echo "llama.cpp/ggml headers outside engine/train/compress:"; echo "$bad"; fails=1; fi
while read -r n f; do
  [ "$f" = total ] && continue
  if [ "$n" -gt 800 ]; then echo "$f has $n lines (limit ~800)"; fails=1; fi
done < <(find "$root/src" "$root/apps" "$root/tests" \( -name '*.cpp' -o -name '*.h' \) -print0 | xargs -0 wc -l)
[ $fails -eq 0 ] && echo "structure ok"
exit $fails
