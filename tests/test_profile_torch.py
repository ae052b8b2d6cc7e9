"""The torch reference-decoder backend on the CPU with a tiny decoder (CI has no GPU): every code path
but CUDA graphs and device-memory sizing, which ran on real H100/H200 machines (profiles/data/*/tp1)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from profiles.backends import torch_ref  # noqa: E402
from profiles.backends.torch_ref import TINY, RefDecoder, correctness_check, load_shapes  # noqa: E402


def test_shapes_from_the_catalog_match_the_planner_catalog():
    """Shapes is the stdlib view of planner.io.schema.ModelSpec (GPU machines lack pydantic): for every
    dense model of the catalog, the same architecture numbers and the same KV bytes per token (the
    meta.yaml's kv_capacity_tokens divides by it); parameters differ by the norm weights only."""
    import dataclasses

    from planner.io.catalog import Catalog

    cat = Catalog.load()
    dense = [name for name in cat.models if cat.model(name).moe is None]
    assert "llama-3.1-8b" in dense and len(dense) >= 3
    for name in dense:
        spec, s = cat.model(name), load_shapes(name)
        for f in dataclasses.fields(s):
            if f.name != "name":
                assert getattr(s, f.name) == getattr(spec, f.name), (name, f.name)
        assert s.kv_bytes_per_token == spec.kv_bytes_per_token
        norms = s.layers * 2 * s.hidden + s.hidden
        assert s.params - norms == spec.params + (s.vocab * s.hidden if spec.tied_embeddings else 0)
    s = load_shapes("llama-3.1-8b")
    assert (s.layers, s.hidden, s.heads, s.kv_heads, s.head_dim, s.intermediate, s.vocab) == (32, 4096, 32, 8, 128, 14336, 128256)
    with pytest.raises(SystemExit, match="MoE"):
        load_shapes("qwen3-30b-a3b")
    with pytest.raises(SystemExit, match="unknown model"):
        load_shapes("nope")


def test_correctness_check_passes_and_catches_a_broken_cache(monkeypatch):
    res = correctness_check(TINY, "cpu", layers=2, batch=2, seq=24)
    assert res["rel_err_prefill_vs_fp64"] < 1e-4 and res["rel_err_decode_vs_prefill"] < 1e-4
    # Break the decode path (no RoPE at the decode position): the check must fail.
    orig = RefDecoder.decode_step

    def wrong_position(self, tokens, caches, position):
        return orig(self, tokens, caches, max(0, position - 3))

    monkeypatch.setattr(RefDecoder, "decode_step", wrong_position)
    with pytest.raises(AssertionError, match="correctness check failed"):
        correctness_check(TINY, "cpu", layers=2, batch=2, seq=24)


def test_tiny_cpu_profile_is_loadable_and_resumable(tmp_path, capsys):
    from planner.perf.profiledata import read_meta
    from profiles.format import DECODE, PREFILL
    from planner.io.files import read_csv

    args = ["--model", "tiny", "--gpu", "H100-SXM-80GB", "--out", str(tmp_path), "--device", "cpu", "--check",
            "--prefill-isl", "16,32", "--prefill-batch", "1,2", "--decode-batch", "1,2,4", "--decode-context", "16,32",
            "--kv-capacity", "80", "--decode-replays", "2", "--decode-repeats", "2"]
    assert torch_ref.main(args) == 0
    # The planner's reader takes the files (its monotonicity check is left out: CPU timings of a toy
    # decoder on a shared 2-core machine are noise; the GPU profiles in profiles/data pass it, see
    # tests/test_profile_show.py).
    meta = read_meta(tmp_path / "meta.yaml")
    assert meta.backend == "torch" and meta.kv_capacity_tokens == 80 and meta.device_name.startswith("cpu")
    pre = read_csv(tmp_path / "prefill.csv", {c: "numeric" for c in PREFILL.required})
    dec = read_csv(tmp_path / "decode.csv", {c: "numeric" for c in DECODE.required})
    assert len(pre) == 4 and set(pre.stat) == {"median"}
    # Decode points whose KV (batch x context) exceeds the 80-token pool are skipped: 4 x 32 = 128.
    assert sorted(map(tuple, dec[["batch", "context_tokens"]].to_numpy().tolist())) == [(1, 16), (1, 32), (2, 16), (2, 32), (4, 16)]
    assert (tmp_path / "run.yaml").is_file()
    capsys.readouterr()
    assert torch_ref.main(args) == 0  # second run: everything resumed
    out = capsys.readouterr().out
    assert '"measured": 0, "resumed": 4' in out and '"measured": 0, "resumed": 5' in out


def test_budget_stops_early_and_keeps_points(tmp_path):
    from profiles.format import ProfileStore

    args = ["--model", "tiny", "--gpu", "H100-SXM-80GB", "--out", str(tmp_path), "--device", "cpu",
            "--prefill-isl", "16,32,64", "--prefill-batch", "1", "--decode-batch", "1", "--decode-context", "16",
            "--kv-capacity", "80", "--budget-s", "0"]
    assert torch_ref.main(args) == 0
    st = ProfileStore(tmp_path)
    assert len(st.prefill_rows) <= 1 and "PARTIAL" in (tmp_path / "meta.yaml").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs and device-memory sizing need a GPU")
def test_cuda_decode_graph_matches_prefill():
    res = correctness_check(TINY, "cuda", layers=2, batch=2, seq=64)
    assert res["rel_err_decode_vs_prefill"] < 3e-2
