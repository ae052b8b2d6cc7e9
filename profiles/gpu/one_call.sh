#!/bin/bash
# One device call, from the repository root the device copied, the bundle's three parts already in PARTS_DIR
# (default /tmp/parts; copied there by the calls before): install vLLM, start profiles.gpu_session in the background
# (its own session) with a deadline GRACE_S (default 45) before this call's limit, and snapshot its results into $OUT
# every SNAP_S seconds (collect.sh), so a call stopped at its limit still brings back everything written so far.
# Why: plan k3h (stop 43) packed its results once, after the session, and the call hit its limit first: the run
# was lost.
# usage: one_call.sh PLAN GPU CALL_LIMIT_S [PARTS_DIR]      (env: PLANNER_CATALOG for imported models; ONLY=labels
#        runs those variants of the plan alone, gpu_session --only: one call fits one variant of ~5 minutes)
# e.g.   bash profiles/gpu/one_call.sh h8 H100-SXM-80GB 590
# The parts' folders: `bash profiles/gpu/stage_bundle.sh BUNDLE_DIR` (.vllm_p0 .. .vllm_p2, each fits the carry).
# Test hooks (tests/test_gpu_one_call.py): RES (results folder, default /tmp/res), SESSION_CMD (replaces
# `python3 -m profiles.gpu_session`), DRIVER_LOG, COLLECT_EXTRA_S (seconds collect.sh waits past the deadline, 20).
set -u
plan=$1; gpu=$2; limit=$3; parts=${4:-/tmp/parts}
here=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s)
deadline=$(( t0 + limit - ${GRACE_S:-45} ))
export RES=${RES:-/tmp/res} DRIVER_LOG=${DRIVER_LOG:-/tmp/driver.log}
if ! bash "$parts/install.sh" "$parts" > "$OUT/install.log" 2>&1; then
  echo "install failed:"; tail -5 "$OUT/install.log"; exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
rm -rf "$RES"; mkdir -p "$RES"
# shellcheck disable=SC2086
only=()
[ -n "${ONLY:-}" ] && only=(--only "$ONLY")
setsid nohup ${SESSION_CMD:-python3 -m profiles.gpu_session} --plan "$plan" --gpu "$gpu" --out "$RES" \
    --deadline-unix-s "$deadline" "${only[@]}" > "$DRIVER_LOG" 2>&1 < /dev/null &
bash "$here/collect.sh" $(( deadline - $(date +%s) + ${COLLECT_EXTRA_S:-20} ))
