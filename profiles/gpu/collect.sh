#!/bin/bash
# On the lent GPU machine: wait up to $1 seconds for the background profiling session (profiles.gpu_session,
# writing /tmp/res) and snapshot its results into $OUT every 20 s, so a call stopped at its time limit still
# brings back everything written so far. Model folders (tokenizers) are left out.
end=$((SECONDS + ${1:-540}))
snap() {
  tar czf "$OUT/res.tgz.part" -C /tmp --exclude=res/_models --exclude='*.pid' res 2>/dev/null && mv "$OUT/res.tgz.part" "$OUT/res.tgz"
  cp /tmp/res/session.log "$OUT/session.log" 2>/dev/null
  cp /tmp/driver.log "$OUT/driver.log" 2>/dev/null
}
while [ $SECONDS -lt $end ] && [ ! -f /tmp/res/DONE ]; do sleep 20; snap; done
snap
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader
tail -c 4000 /tmp/res/session.log
