#!/bin/bash
# On the lent GPU machine, from the folder holding this repository's code (copied to /tmp/dev):
# install the vLLM bundle from the part folders given, then start profiles.gpu_session in the background
# (its own session: it outlives this call) with the given device-time deadline in seconds from now.
# usage: start.sh SECONDS_LEFT PART_DIR...
# install.sh is ../shared/tools/vllm-offline/install.sh, copied next to this script when the code is
# staged for the device (it is not part of this repository). How the 2026-12-02 session ran: stage
# `git archive HEAD planner profiles` + install.sh into an ignored folder of the checkout the device
# receives; call 1 and 2 copy bundle parts 0 and 1 to /tmp/parts; call 3 copies part 2, runs this
# script and then collect.sh; later calls run collect.sh alone (back to back, the machine stays warm).
set -u
left=$1; shift
deadline=$(( $(date +%s) + left ))
bash /tmp/dev/profiles/gpu/install.sh "$@" 2>&1 | tail -3
export PYTHONPATH=/tmp/site:/tmp/dev PYTHONUNBUFFERED=1
cd /tmp/dev || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
setsid nohup python3 -m profiles.gpu_session --plan "${PLAN:-s1}" --out /tmp/res --deadline-unix-s "$deadline" > /tmp/driver.log 2>&1 < /dev/null &
sleep 15
cat /tmp/driver.log
