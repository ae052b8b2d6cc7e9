#!/bin/bash
# On the lent GPU machine: wait up to $1 seconds for the background profiling session (profiles.gpu_session,
# writing $RES, default /tmp/res) and snapshot its results into $OUT every $SNAP_S seconds (default 20), so a call
# stopped at its time limit still brings back everything written so far. Model folders (tokenizers) are left out.
res=${RES:-/tmp/res}
end=$((SECONDS + ${1:-540}))
snap() {
  tar czf "$OUT/res.tgz.part" -C "$(dirname "$res")" --exclude="$(basename "$res")/_models" --exclude='*.pid' \
      "$(basename "$res")" 2>/dev/null && mv "$OUT/res.tgz.part" "$OUT/res.tgz"
  cp "$res/session.log" "$OUT/session.log" 2>/dev/null
  cp "${DRIVER_LOG:-/tmp/driver.log}" "$OUT/driver.log" 2>/dev/null
}
while [ $SECONDS -lt $end ] && [ ! -f "$res/DONE" ]; do sleep "${SNAP_S:-20}"; snap; done
snap
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader 2>/dev/null
tail -c 4000 "$res/session.log" 2>/dev/null
exit 0
