#!/usr/bin/env bash
# A PaddleOCR-only pack for the lent GPU machine: the wheels of the full pack (.device/pNN, built by
# ../shared/device/pack.sh with vllm.txt, paddleocr-onnx.txt and hybridocr-extra.txt) less vLLM and what only
# vLLM needs, 7 parts of 56 MiB instead of 14: half the stash calls, for paddle-mode steps (servepaddle,
# paddle, recprof, graphprof) when device time is short. Writes .device-slim/pNN (one part each) and
# .device-slim/fin (install.sh, SHA256SUMS, PARTS: carried by the final call, cluster/gpu-bench/README.md).
#
#   bash cluster/gpu-bench/slim.sh
set -euo pipefail
top=$(git rev-parse --show-toplevel)
out=${SLIM_OUT:-$top/.device-slim} tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ls "$top"/.device/p*/part.* >/dev/null 2>&1 || { echo "slim.sh: no full pack under .device/ (../shared/device/pack.sh)" >&2; exit 1; }
grep -qx '/.device-slim/' "$top/.git/info/exclude" 2>/dev/null || echo '/.device-slim/' >> "$top/.git/info/exclude"
cat "$top"/.device/p*/part.* | tar -xf - -C "$tmp"
vllm_only='^(vllm|flashinfer_python|xgrammar|outlines_core|apache_tvm_ffi|llguidance|mistral_common|openai_harmony|pycountry|gguf|compressed_tensors|depyf|lm_format_enforcer|anthropic|openai|mcp)-'
mapfile -t keep < <(cd "$tmp" && ls | grep -Ev "$vllm_only")
# Ray's 32 MB Java jar is never loaded by a Python-only run (README item 1): without it the pack is 7 parts, not 8
for w in "$tmp"/ray-*.whl; do
  unzip -l "$w" ray/jars/ray_dist.jar >/dev/null 2>&1 && python3 "$top/cluster/gpu-bench/strip_wheel.py" "$w" ray/jars/ray_dist.jar
done
rm -rf "$out" && mkdir -p "$out/fin"
(cd "$tmp" && sha256sum "${keep[@]}") > "$out/fin/SHA256SUMS"
(cd "$tmp" && tar -cf - "${keep[@]}") | split -b 56M -d -a 2 - "$out/part."
i=1
for part in "$out"/part.*; do
  d=$(printf "%s/p%02d" "$out" "$i"); mkdir -p "$d"; mv "$part" "$d/"
  cp "$top/.device/p01/stash.sh" "$d/"; i=$((i+1))
done
cp "$(ls "$top"/.device/p*/install.sh | head -1)" "$out/fin/install.sh"
echo "$((i-1))" > "$out/fin/PARTS"
echo "packed ${#keep[@]} wheels into $((i-1)) part(s) under .device-slim/"
