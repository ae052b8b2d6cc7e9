"""The Splitwise converter reproduces the bundled profiles from the public CSV (../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from planner.perf.laws import DEFAULT_PROFILES_DIR
from planner.perf.profiledata import iter_profiles
from profiles.convert_splitwise import convert


def test_convert_matches_bundled(shared_data: Path, tmp_path: Path) -> None:
    dirs = convert(shared_data / "splitwise-perf" / "perf_model.csv", tmp_path)
    assert len(dirs) == 6  # A100 and H100 at tp 2, 4, 8; power-capped H100 skipped
    fresh = {(p.meta.gpu, p.meta.tp): p for p in iter_profiles(tmp_path)}
    bundled = {(p.meta.gpu, p.meta.tp): p for p in iter_profiles(DEFAULT_PROFILES_DIR) if p.meta.model == "llama-2-70b"}
    assert fresh.keys() == bundled.keys()
    for key, p in fresh.items():
        assert p.meta == bundled[key].meta
        pd.testing.assert_frame_equal(p.prefill.reset_index(drop=True), bundled[key].prefill.reset_index(drop=True))
        pd.testing.assert_frame_equal(p.decode.reset_index(drop=True), bundled[key].decode.reset_index(drop=True))
        assert "8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0" in p.meta.source
    a100 = fresh[("A100-80GB", 8)]
    # prompt 512, 1 request, 8192 output tokens -> decode context 512 + 8192/2
    assert ((a100.decode.batch == 1) & (a100.decode.context_tokens == 512 + 4096)).sum() == 5
    assert not ((fresh[("A100-80GB", 2)].prefill.batch == 64)).any()  # dropped broken tp2 batch-64 run
