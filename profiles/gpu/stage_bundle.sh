#!/bin/bash
# Stage the offline vLLM bundle (../shared/tools/vllm-offline/build.sh's output) for the lent GPU machine: one
# folder per device call, .vllm_p0 .. .vllm_pK-1 at the repository's root, each small enough that the folder plus
# the files the device copies with every call (the tracked tree) stay under the device's carry limit (64 MiB).
# Why: build.sh cuts 58-MiB parts; with this repository at ~13 MB a part no longer fits beside it, and the device
# refuses the call before it starts (stop 44's first call). The parts are re-cut from the joined archive (install.sh
# joins `site.tar.xz.part*` in name order, so any cut works), the checksum and install.sh go in the last folder,
# and every folder is listed in .git/info/exclude (git must not track 140 MB of archive).
# usage: stage_bundle.sh BUNDLE_DIR [INSTALL_SH]     (from the repository's root; INSTALL_SH defaults to
#        ../shared/tools/vllm-offline/install.sh). Env: CARRY_LIMIT_BYTES (default 64 MiB), MARGIN_BYTES (default
#        2 MiB: the device counts untracked, not-ignored files too), MAX_FOLDERS (default 8: one device call each).
# Then: call i copies .vllm_p$i/* to /tmp/parts (carry [".vllm_p$i"]); the last call runs
#        `cp .vllm_pK-1/* /tmp/parts/ && bash profiles/gpu/one_call.sh PLAN GPU 590` (profiles/gpu/one_call.sh).
#        stage_bundle.sh --check: whether each staged folder still fits the carry limit beside what the device copies
#        now (the tracked files and the untracked ones git does not ignore; exit 0, with the room left), or which does
#        not (exit 1: re-stage). Why: stop 48's first call was refused (no device time) because the tree had grown
#        since the folders were cut.
set -euo pipefail
limit=${CARRY_LIMIT_BYTES:-$((64 * 1024 * 1024))}
margin=${MARGIN_BYTES:-$((2 * 1024 * 1024))}
# bytes of the NUL-separated file names on stdin
sum_sizes() { xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
if [ "${1:-}" = "--check" ]; then
  # half the staging's margin by default: a tree grown a little since the staging still passes; 1 MiB is above the
  # 785,016 bytes a refused call had left by this sum (stop 57) and below the 1.47 MB a call that passed had
  margin=${MARGIN_BYTES:-$((1024 * 1024))}
  [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] || { echo "run from the repository's root" >&2; exit 2; }
  tree_bytes=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | sum_sizes)
  ls -d .vllm_p[0-9]* > /dev/null 2>&1 || { echo "no staged folders (.vllm_p0 ...): stage_bundle.sh BUNDLE_DIR" >&2; exit 1; }
  bad=0
  for f in .vllm_p[0-9]*; do
    n=$(( $(find "$f" -type f -print0 | sum_sizes) + tree_bytes ))
    # within the margin counts as over: the device counts more than these files' bytes (stop 57: a call was refused
    # with 785,016 bytes left by this sum; 1.47 MB had passed)
    if [ "$n" -gt "$(( limit - margin ))" ]; then
      echo "$f: $n bytes with the $tree_bytes-byte tree, over the $limit-byte carry limit less the $margin-byte" \
           "margin: re-stage" >&2
      bad=1
    else
      echo "$f: $n bytes with the $tree_bytes-byte tree, $(( limit - n )) under the limit"
    fi
  done
  exit "$bad"
fi
bundle=${1:?usage: stage_bundle.sh BUNDLE_DIR [INSTALL_SH]}
install_sh=${2:-../shared/tools/vllm-offline/install.sh}
ls "$bundle"/site.tar.xz.part* > /dev/null 2>&1 || { echo "$bundle: no site.tar.xz.part* (build.sh's output expected)" >&2; exit 2; }
[ -f "$bundle/SHA256SUMS" ] || { echo "$bundle: no SHA256SUMS (build.sh's output expected)" >&2; exit 2; }
[ -f "$install_sh" ] || { echo "$install_sh: not found (the bundle's install.sh)" >&2; exit 2; }
[ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] || { echo "run from the repository's root" >&2; exit 2; }
tree_bytes=$(git ls-files -z | sum_sizes)
extra_bytes=$(( $(stat -c %s "$install_sh") + $(stat -c %s "$bundle/SHA256SUMS") ))
room=$(( limit - margin - tree_bytes - extra_bytes ))
[ "$room" -gt 0 ] || { echo "the tracked tree ($tree_bytes bytes) leaves no room under $limit bytes" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat $(ls "$bundle"/site.tar.xz.part* | sort) > "$work/site.tar.xz"
want=$(awk '{print $1}' "$bundle/SHA256SUMS")
got=$(sha256sum "$work/site.tar.xz" | awk '{print $1}')
[ "$want" = "$got" ] || { echo "$bundle: the joined parts do not match SHA256SUMS" >&2; exit 2; }
calls=$(( ($(stat -c %s "$work/site.tar.xz") + room - 1) / room ))
[ "$calls" -le "${MAX_FOLDERS:-8}" ] || { echo "$calls folders of $room bytes (one device call each) beside a $tree_bytes-byte tree: more than ${MAX_FOLDERS:-8}; shrink the tree" >&2; exit 2; }
(cd "$work" && split -b "$room" -d -a 2 site.tar.xz site.tar.xz.part && rm site.tar.xz)
rm -rf .vllm_p[0-9]*
n=0
for p in $(ls "$work"/site.tar.xz.part* | sort); do
  mkdir -p ".vllm_p$n"; mv "$p" ".vllm_p$n/"; n=$((n + 1))
done
last=".vllm_p$((n - 1))"
cp "$bundle/SHA256SUMS" "$install_sh" "$last/"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"; touch "$exclude"
for i in $(seq 0 $((n - 1))); do grep -qx ".vllm_p$i/" "$exclude" || echo ".vllm_p$i/" >> "$exclude"; done
echo "staged $n folders (.vllm_p0 .. $last), at most $room bytes of archive each beside a $tree_bytes-byte tree"
