"""profiles.format, the one definition of the profile directory: every committed profile survives a
write and a read unchanged (through the planner's loader and through the standard-library reader),
the profiler's writer keeps its exact bytes, and the planner's schema agrees with the format."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from planner.io.errors import InputError
from planner.perf.profiledata import ProfileMeta, iter_profiles, load_profile, write_profile
from profiles import format as pfmt
from profiles import sweep

DATA = Path(pfmt.__file__).resolve().parent / "data"
COMMITTED = sorted(p.path for p in iter_profiles(DATA))


def test_every_committed_profile_is_found():
    # torch, vLLM and Splitwise profiles of several models and GPUs: the round trips below cover them all.
    backends = {load_profile(d).meta.backend.split()[0] for d in COMMITTED}
    assert len(COMMITTED) >= 10 and {"torch", "vllm"} <= backends and any(b.startswith("splitwise") for b in backends)


@pytest.mark.parametrize("directory", COMMITTED, ids=lambda d: str(d.relative_to(DATA)))
def test_committed_profile_round_trips_through_the_planner_writer(directory: Path, tmp_path: Path):
    first = load_profile(directory)
    write_profile(tmp_path / "p", first.meta, first.prefill, first.decode, first.mixed)
    again = load_profile(tmp_path / "p")
    assert again.meta == first.meta
    pd.testing.assert_frame_equal(again.prefill, first.prefill)
    pd.testing.assert_frame_equal(again.decode, first.decode)
    assert (again.mixed is None) == (first.mixed is None)


@pytest.mark.parametrize("directory", COMMITTED, ids=lambda d: str(d.relative_to(DATA)))
def test_committed_profile_round_trips_through_the_stdlib_reader_and_writer(directory: Path, tmp_path: Path):
    first = pfmt.read_profile_dir(directory)
    headers = {t.file: (directory / t.file).read_text().splitlines()[0].split(",") for t in pfmt.TABLES
               if (directory / t.file).is_file()}
    pfmt.write_profile_dir(tmp_path, first.meta, first.prefill, first.decode, first.mixed, columns=headers, float_digits=None)
    again = pfmt.read_profile_dir(tmp_path)
    assert (again.meta, again.prefill, again.decode, again.mixed) == (first.meta, first.prefill, first.decode, first.mixed)
    # and the planner's loader reads the rewritten directory as it reads the committed one
    a, b = load_profile(tmp_path), load_profile(directory)
    pd.testing.assert_frame_equal(a.prefill, b.prefill)
    pd.testing.assert_frame_equal(a.decode, b.decode)


def test_profiler_writes_the_documented_columns_and_4_decimals(tmp_path: Path):
    st = pfmt.ProfileStore(tmp_path)
    st.add_prefill(256, 2, [10.0, 12.5, 11.0])
    st.add_prefill(128, 1, [5.0, 5.25], e2e_samples=[9.0, 11.0])
    st.add_decode(4, 512, [7.0, 7.25], central=8.0)
    assert (tmp_path / "prefill.csv").read_text() == (
        "isl,batch,ttft_ms,stat,ttft_ms_min,ttft_ms_max,repeats,ttft_e2e_ms\n"
        "128,1,5.1250,median,5.0000,5.2500,2,10.0000\n"
        "256,2,11.0000,median,10.0000,12.5000,3,\n")
    assert (tmp_path / "decode.csv").read_text() == (
        "batch,context_tokens,itl_ms,stat,itl_ms_min,itl_ms_max,repeats,raised\n"
        "4,512,8.0000,median,7.0000,7.2500,2,1\n")
    st.write_record({"gpu_seconds": 1.5}, {"model": "m", "gpu": "g", "tp": 1})
    assert (tmp_path / "meta.yaml").read_text() == "model: m\ngpu: g\ntp: 1\n"
    assert pfmt.ProfileStore(tmp_path).prefill_done() == {(128, 1): 5.125, (256, 2): 11.0}


def test_profile_store_resumes_a_directory_with_a_text_column(tmp_path: Path):
    # qwen3-30b-a3b's earlier vLLM prefill (client TTFT) carries a `source` note column; resuming must not choke on it.
    src = DATA / "qwen3-30b-a3b" / "H200-141GB" / "tp1" / "vllm" / "prefill_client_ttft.csv"
    shutil.copy(src, tmp_path / "prefill.csv")
    rows = pfmt.ProfileStore(tmp_path).prefill_rows
    assert rows and all(r["source"] == "ttft_e2e_ms" and isinstance(r["isl"], int) for r in rows)


def test_writer_refuses_a_table_without_a_required_column_and_writes_nothing(tmp_path: Path):
    meta = {"model": "m"}
    with pytest.raises(ValueError, match="decode.csv.*context_tokens"):
        pfmt.write_profile_dir(tmp_path, meta, [{"isl": 1, "batch": 1, "ttft_ms": 1.0}], [{"batch": 1, "itl_ms": 1.0}],
                               columns={"decode.csv": ["batch", "itl_ms"]})
    assert not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="context_tokens"):
        write_profile(tmp_path, ProfileMeta(model="m", gpu="g", tp=1, engine="e", kv_capacity_tokens=1, date="d", backend="b"),
                      pd.DataFrame({"isl": [1], "batch": [1], "ttft_ms": [1.0]}), pd.DataFrame({"batch": [1], "itl_ms": [1.0]}))
    assert not list(tmp_path.iterdir())


def test_meta_keys_are_the_planner_schema():
    fields = ProfileMeta.model_fields
    assert tuple(fields) == pfmt.META_KEYS
    assert tuple(k for k, f in fields.items() if f.is_required()) == pfmt.META_REQUIRED


def test_profiler_grid_is_the_format_grid():
    assert [p.key for p in sweep.prefill_grid()] == [(i, b) for i in pfmt.PREFILL_ISL for b in pfmt.PREFILL_BATCH]
    assert [p.key for p in sweep.decode_grid()] == [(b, c) for b in pfmt.DECODE_BATCH for c in pfmt.DECODE_CONTEXT]
    for t in (pfmt.PREFILL, pfmt.DECODE):
        assert t.written[: len(t.required)] == t.required and t.axes is not None and set(t.axes) <= set(t.sizes)


def test_one_atomic_writer_with_the_planners_error_on_top(tmp_path: Path):
    from planner.io.files import write_atomic

    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):  # the GPU side: the OSError as it is
        pfmt.write_atomic(tmp_path / "f" / "meta.yaml", "a: 1\n")
    with pytest.raises(InputError, match="cannot write the file"):  # the planner: file and expectation
        write_atomic(tmp_path / "f" / "meta.yaml", "a: 1\n")
    write_atomic(tmp_path / "d" / "meta.yaml", "a: 1\n")
    pfmt.write_atomic(tmp_path / "d" / "meta.yaml", "a: 2\n")
    assert (tmp_path / "d" / "meta.yaml").read_text() == "a: 2\n" and [p.name for p in (tmp_path / "d").iterdir()] == ["meta.yaml"]


def test_format_and_the_torch_backend_import_without_the_planners_dependencies():
    # GPU machines have torch, numpy and pyyaml, not pandas or pydantic (module docstring).
    import subprocess
    import sys

    code = ("import sys\nfor m in ('pandas', 'pydantic', 'scipy', 'planner'): sys.modules[m] = None\n"
            "import profiles.format, profiles.sweep, profiles.backends.torch_ref\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=DATA.parents[1], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
