#!/usr/bin/env bash
# One-command set-up: creates .venv, installs the CPU build of torch FIRST (any other torch
# pulls a multi-GB CUDA build), then longrec with its extras. Re-running is safe.
#   PYTHON=python3.11 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/pip"
$PIP install --disable-pip-version-check -q torch==2.13.0
extras="all,dev,docs"
find_links=()
# A prebuilt llama-cpp-python wheel (see ../shared/wheels/README.md) spares a 30-minute compile;
# with it we also install the local-LLM extra. Without it: `pip install -e '.[llm]'` compiles.
if [ -d ../shared/wheels ] && ls ../shared/wheels/llama_cpp_python-*.whl >/dev/null 2>&1; then
  find_links=(--find-links ../shared/wheels)
  extras="$extras,llm"
fi
$PIP install --disable-pip-version-check -q "${find_links[@]}" -e ".[$extras]"
echo "longrec installed in .venv (extras: $extras). Try: .venv/bin/longrec quickstart"
