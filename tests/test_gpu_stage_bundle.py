"""profiles/gpu/stage_bundle.sh: re-cut the offline vLLM bundle into one folder per device call, each small enough to
travel beside the repository under the device's carry limit (stop 44's first call was refused: a 58-MiB part of
build.sh plus the 13-MB tree passed 64 MiB). Run on a scratch git repository with a made-up archive and a small
limit: the folders must join back to the archive byte for byte, each must fit, and bad input must change nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "profiles" / "gpu" / "stage_bundle.sh"


def _repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "code.py").write_bytes(os.urandom(40_000))  # the tracked tree the device copies with every call
    subprocess.run(["git", "add", "code.py"], cwd=repo, check=True)
    return repo


def _bundle(tmp: Path, size: int, parts: int) -> tuple[Path, bytes]:
    b = tmp / "bundle"
    b.mkdir()
    data = os.urandom(size)
    cut = -(-size // parts)
    for i in range(parts):
        (b / f"site.tar.xz.part{i:02d}").write_bytes(data[i * cut:(i + 1) * cut])
    (b / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  site.tar.xz\n")
    (tmp / "install.sh").write_text("echo install\n")
    return b, data


def _run(repo: Path, bundle: Path, install: Path, limit: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARRY_LIMIT_BYTES": str(limit), "MARGIN_BYTES": "4096"}
    return subprocess.run(["bash", str(SCRIPT), str(bundle), str(install)], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_folders_join_back_to_the_archive_and_each_fits_beside_the_tree(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    bundle, data = _bundle(tmp_path, 500_000, 3)  # build.sh's three parts, each too large for the limit below
    limit = 200_000
    proc = _run(repo, bundle, tmp_path / "install.sh", limit)
    assert proc.returncode == 0, proc.stderr
    folders = sorted(repo.glob(".vllm_p*"), key=lambda p: int(p.name[len(".vllm_p"):]))
    assert len(folders) >= 4  # more, smaller folders than build.sh's three parts
    parts = sorted(p for f in folders for p in f.glob("site.tar.xz.part*"))
    assert b"".join(p.read_bytes() for p in parts) == data
    for f in folders:
        assert sum(p.stat().st_size for p in f.iterdir()) + 40_000 <= limit
    assert {p.name for p in folders[-1].iterdir()} >= {"SHA256SUMS", "install.sh"}
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert all(f"{f.name}/" in exclude for f in folders)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert ".vllm_p" not in status  # git does not see the archive


def test_a_bundle_whose_parts_do_not_match_its_checksum_changes_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    bundle, _ = _bundle(tmp_path, 100_000, 2)
    (repo / ".vllm_p0").mkdir()
    (repo / ".vllm_p0" / "keep").write_text("an earlier staging")
    (bundle / "site.tar.xz.part01").write_bytes(b"truncated")
    proc = _run(repo, bundle, tmp_path / "install.sh", 200_000)
    assert proc.returncode == 2 and str(bundle) in proc.stderr and "SHA256SUMS" in proc.stderr
    assert (repo / ".vllm_p0" / "keep").read_text() == "an earlier staging"
    missing = _run(repo, tmp_path / "nowhere", tmp_path / "install.sh", 200_000)
    assert missing.returncode == 2 and "site.tar.xz.part" in missing.stderr


def test_check_says_when_the_tree_has_grown_past_the_staged_folders(tmp_path: Path) -> None:
    """`stage_bundle.sh --check` (stop 48: the first device call was refused because the tree had grown since the
    folders were cut): 0 while every folder fits beside what the device copies, 1 naming the folder once a new
    untracked (not ignored) file pushes it over; the folders stay as they were."""
    repo = _repo(tmp_path)
    bundle, _ = _bundle(tmp_path, 500_000, 3)
    limit = 200_000
    assert _run(repo, bundle, tmp_path / "install.sh", limit).returncode == 0
    env = {**os.environ, "CARRY_LIMIT_BYTES": str(limit), "MARGIN_BYTES": "4096"}

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), "--check"], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=60)

    ok = check()
    assert ok.returncode == 0 and "under the limit" in ok.stdout, ok.stderr
    before = sorted((p.name, p.stat().st_size) for p in repo.glob(".vllm_p*/*"))
    (repo / "new_run.csv").write_bytes(os.urandom(60_000))  # a new run folder's files, not yet committed
    grown = check()
    assert grown.returncode == 1 and ".vllm_p0" in grown.stderr and "re-stage" in grown.stderr
    assert sorted((p.name, p.stat().st_size) for p in repo.glob(".vllm_p*/*")) == before


def test_check_counts_the_margin_as_over(tmp_path: Path) -> None:
    """Stop 57: a device call was refused with 785,016 bytes left by --check's sum (the device counts more than the
    files' bytes), where --check had said the folders fit. Within MARGIN_BYTES of the limit is now over: re-stage."""
    repo = _repo(tmp_path)
    bundle, _ = _bundle(tmp_path, 500_000, 3)
    limit = 200_000
    assert _run(repo, bundle, tmp_path / "install.sh", limit).returncode == 0
    sizes = [sum(f.stat().st_size for f in d.iterdir()) for d in repo.glob(".vllm_p*")]
    tree = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file() and ".git" not in f.parts
               and not any(part.startswith(".vllm_p") for part in f.parts))
    room = limit - tree - max(sizes)  # what the fullest folder leaves by the sum
    assert room > 0
    for margin, code in ((room - 1, 0), (room + 1, 1)):
        env = {**os.environ, "CARRY_LIMIT_BYTES": str(limit), "MARGIN_BYTES": str(margin)}
        res = subprocess.run(["bash", str(SCRIPT), "--check"], cwd=repo, env=env, capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == code, (margin, room, res.stdout, res.stderr)
