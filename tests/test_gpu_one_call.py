"""profiles/gpu/one_call.sh: one device call that installs the bundle, runs the profiling session in the background
and snapshots its results into $OUT while it runs. The session itself is replaced by a stand-in script (the real one
needs vLLM on a GPU, an external system here): what is tested is the call's packing, which lost plan k3h's run at
stop 43 when the results were packed once, after the session, and the call hit its limit first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_SESSION = '''
import argparse, os, pathlib, sys, time
ap = argparse.ArgumentParser()
for a in ("--plan", "--gpu", "--out", "--deadline-unix-s", "--only"):
    ap.add_argument(a)
a = ap.parse_args()
out = pathlib.Path(a.out)
(out / "pid").write_text(str(os.getpid()))
(out / "session.log").write_text(f"plan {a.plan} gpu {a.gpu} only {a.only} deadline {a.deadline_unix_s}\\n")
(out / "m" / "vllm").mkdir(parents=True)
(out / "m" / "vllm" / "prefill.csv").write_text("isl,batch,ttft_ms\\n512,1,30.0\\n")
if os.environ.get("FAKE_HANG"):
    time.sleep(120)  # a session still running when the call must end
(out / "DONE").write_text("done\\n")
'''


def _call(tmp: Path, limit_s: int, grace_s: int, hang: bool, only: str = "") -> tuple[subprocess.CompletedProcess, Path, float]:
    parts, out, res = tmp / "parts", tmp / "out", tmp / "res"
    parts.mkdir()
    out.mkdir()
    (parts / "install.sh").write_text("echo installed from \"$1\"\n")
    fake = tmp / "fake_session.py"
    fake.write_text(FAKE_SESSION)
    env = {**os.environ, "OUT": str(out), "RES": str(res), "DRIVER_LOG": str(tmp / "driver.log"), "SNAP_S": "0.2",
           "COLLECT_EXTRA_S": "1", "GRACE_S": str(grace_s), "SESSION_CMD": f"{sys.executable} {fake}"}
    if hang:
        env["FAKE_HANG"] = "1"
    env.pop("ONLY", None)
    if only:
        env["ONLY"] = only
    t0 = time.time()
    proc = subprocess.run(["bash", "profiles/gpu/one_call.sh", "k3h", "H100-SXM-80GB", str(limit_s), str(parts)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return proc, res, t0


def _members(tgz: Path) -> dict[str, bytes]:
    with tarfile.open(tgz) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_the_call_packs_the_session_when_it_ends(tmp_path: Path) -> None:
    """The session ends: its files are in $OUT/res.tgz (model folders and pid files left out), with its log beside,
    and the session got a deadline GRACE_S before the call's limit."""
    proc, res, t0 = _call(tmp_path, limit_s=100, grace_s=45, hang=False, only="qwen3-14b-fp8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = _members(tmp_path / "out" / "res.tgz")
    assert got["res/m/vllm/prefill.csv"].startswith(b"isl,batch")
    assert "res/DONE" in got
    log = (tmp_path / "out" / "session.log").read_text()
    assert "plan k3h gpu H100-SXM-80GB only qwen3-14b-fp8" in log
    deadline = float(log.split("deadline ")[1])
    assert t0 + 100 - 45 - 5 <= deadline <= t0 + 100 - 45 + 5
    assert "installed from" in (tmp_path / "out" / "install.log").read_text()


def test_a_session_still_running_at_the_deadline_leaves_what_it_wrote(tmp_path: Path) -> None:
    """The session is still running when the call must end: collect.sh stops waiting shortly after the session's
    deadline and $OUT holds everything written so far (plan k3h's loss); the session is left to the machine."""
    # 5 s from the call's start to the session's deadline (and collect.sh's last snapshot 1 s after it): room for the
    # stand-in (a Python script of a few stdlib imports, ~0.1 s idle) to start and write its files on a busy machine
    proc, res, _ = _call(tmp_path, limit_s=51, grace_s=46, hang=True)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        got = _members(tmp_path / "out" / "res.tgz")
        assert "res/m/vllm/prefill.csv" in got and "res/DONE" not in got
    finally:
        pid = (res / "pid").read_text().strip() if (res / "pid").is_file() else ""
        if pid:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
