"""Profile directories: round trip, iteration, and bad inputs named by file, column and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.io.errors import InputError
from planner.perf.profiledata import (
    ProfileMeta,
    central_points,
    iter_profiles,
    load_profile,
    profile_dir,
    read_decode,
    read_prefill,
    write_profile,
)


def _meta(**kw) -> ProfileMeta:
    base = dict(model="llama-3.1-8b", gpu="L4", tp=1, engine="vllm", engine_version="0.9.0",
                kv_capacity_tokens=50000, date="2025-01-01", backend="vllm")
    base.update(kw)
    return ProfileMeta(**base)


def _prefill() -> pd.DataFrame:
    rows = [(isl, b, 5 + 0.02 * isl * b + r) for isl in (128, 512, 2048) for b in (1, 2, 4) for r in (0.0, 0.1, 0.2)]
    return pd.DataFrame(rows, columns=["isl", "batch", "ttft_ms"])


def _decode() -> pd.DataFrame:
    rows = [(b, c, 10 + 0.05 * b + 1e-5 * b * c) for b in (1, 8, 64) for c in (512, 4096)]
    return pd.DataFrame(rows, columns=["batch", "context_tokens", "itl_ms"])


def test_round_trip_and_iter(tmp_path: Path) -> None:
    d = profile_dir(tmp_path, "llama-3.1-8b", "L4", 1)
    write_profile(d, _meta(), _prefill(), _decode())
    assert not list(d.glob(".*.tmp")), "no temporary files left behind"
    p = load_profile(d)
    assert p.meta == _meta()
    pd.testing.assert_frame_equal(p.prefill, _prefill(), check_dtype=False)
    write_profile(profile_dir(tmp_path, "llama-3.1-8b", "L4", 2), _meta(tp=2), _prefill(), _decode())
    assert [(q.meta.gpu, q.meta.tp) for q in iter_profiles(tmp_path)] == [("L4", 1), ("L4", 2)]
    c = central_points(p.prefill, ["isl", "batch"], "ttft_ms")
    assert len(c) == 9 and (c["n"] == 3).all()
    assert c.loc[(c.isl == 128) & (c.batch == 1), "ttft_ms"].item() == pytest.approx(5 + 0.02 * 128 + 0.1)


def test_meta_must_match_layout(tmp_path: Path) -> None:
    write_profile(profile_dir(tmp_path, "llama-3.1-8b", "L4", 1), _meta(tp=2), _prefill(), _decode())
    with pytest.raises(InputError) as e:
        list(iter_profiles(tmp_path))
    assert e.value.field == "tp" and e.value.path.endswith("meta.yaml")


def test_missing_column(tmp_path: Path) -> None:
    f = tmp_path / "prefill.csv"
    _prefill().drop(columns=["batch"]).to_csv(f, index=False)
    with pytest.raises(InputError) as e:
        read_prefill(f)
    assert e.value.path == str(f) and e.value.field == "batch" and "missing column" in e.value.expected


def test_nan_and_negative(tmp_path: Path) -> None:
    f = tmp_path / "decode.csv"
    df = _decode()
    df.loc[3, "itl_ms"] = np.nan
    df.to_csv(f, index=False)
    with pytest.raises(InputError) as e:
        read_decode(f)
    assert e.value.field == "itl_ms" and "row 5" in e.value.expected
    df = _decode()
    df.loc[2, "batch"] = -4
    df.to_csv(f, index=False)
    with pytest.raises(InputError) as e:
        read_decode(f)
    assert e.value.field == "batch" and "line 4" in e.value.expected


def test_non_monotone(tmp_path: Path) -> None:
    f = tmp_path / "prefill.csv"
    df = _prefill()
    df.loc[(df.isl == 2048) & (df.batch == 2), "ttft_ms"] = 20.0  # falls below isl=512, batch=2
    df.to_csv(f, index=False)
    with pytest.raises(InputError) as e:
        read_prefill(f)
    assert e.value.path == str(f) and e.value.field == "ttft_ms"
    assert "isl" in e.value.expected and "batch=2" in e.value.expected
    line = int(e.value.expected.split("line ")[1].split()[0])
    assert df.iloc[line - 2]["isl"] == 2048 and df.iloc[line - 2]["batch"] == 2


def test_noise_within_tolerance_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "decode.csv"
    df = _decode()
    df.loc[(df.batch == 8) & (df.context_tokens == 4096), "itl_ms"] *= 0.95  # a 5% wobble is noise
    df.to_csv(f, index=False)
    assert len(read_decode(f)) == len(df)


def test_stat_column_checked_per_stat(tmp_path: Path) -> None:
    f = tmp_path / "decode.csv"
    med = _decode().assign(stat="median")
    p90 = _decode().assign(stat="p90", itl_ms=lambda d: d.itl_ms * 1.3)
    pd.concat([med, p90]).to_csv(f, index=False)
    df = read_decode(f)
    c = central_points(df, ["batch", "context_tokens"], "itl_ms")
    assert np.allclose(np.sort(c.itl_ms), np.sort(_decode().itl_ms))


def test_bad_meta(tmp_path: Path) -> None:
    d = profile_dir(tmp_path, "m", "g", 1)
    write_profile(d, _meta(model="m", gpu="g"), _prefill(), _decode())
    (d / "meta.yaml").write_text((d / "meta.yaml").read_text().replace("kv_capacity_tokens: 50000", "kv_capacity_tokens: -1"))
    with pytest.raises(InputError) as e:
        load_profile(d)
    assert e.value.field == "kv_capacity_tokens" and e.value.path.endswith("meta.yaml")


def test_a_profile_loaded_again_is_its_files_own_parse_and_the_callers_own_copy(tmp_path: Path) -> None:
    """load_profile keeps the parse per digest of the files' bytes: a changed file (same size included) is parsed
    anew, a file gone or failing its checks raises every time, and no two callers share a table."""
    d = profile_dir(tmp_path, "llama-3.1-8b", "L4", 1)
    write_profile(d, _meta(), _prefill(), _decode())
    first = load_profile(d)
    first.prefill.loc[0, "ttft_ms"] = 1e6  # a caller changing what it got ...
    again = load_profile(d)  # ... changes nothing the next caller gets
    assert again.prefill.loc[0, "ttft_ms"] == pytest.approx(_prefill().loc[0, "ttft_ms"])
    assert again.meta == _meta() and again.prefill is not first.prefill
    # the same directory's files changed in place, the file's size unchanged: the new values, not the kept parse
    text = (d / "prefill.csv").read_text()
    changed = text.replace("7.56", "7.57", 1)
    assert changed != text and len(changed) == len(text)
    (d / "prefill.csv").write_text(changed)
    assert (np.isclose(load_profile(d).prefill["ttft_ms"], 7.57)).sum() == 1
    # a copy elsewhere reads the same and names its own directory
    other = profile_dir(tmp_path / "b", "llama-3.1-8b", "L4", 1)
    write_profile(other, _meta(), _prefill(), _decode())
    assert load_profile(other).path == other
    # an empty mixed.csv beside files that parsed before fails its check, as it would on first sight
    (other / "mixed.csv").write_text("")
    with pytest.raises(InputError):
        load_profile(other)
    (other / "mixed.csv").unlink()
    (other / "decode.csv").unlink()
    with pytest.raises(InputError):
        load_profile(other)
