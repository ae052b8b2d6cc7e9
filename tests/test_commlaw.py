"""Measured all-reduce laws (planner.perf.allreduce) and their use in the roofline prior's TP term.

The bundled table (profiles/data/allreduce/H100-SXM-80GB) was measured on 4 real H100s with
profiles/backends/allreduce.py; the synthetic tables check the interpolation and the law.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.io.catalog import Catalog
from planner.perf.allreduce import fit_ring, load_allreduce, table_from_frame
from planner.io.errors import InputError
from planner.perf.laws import ALLREDUCE_DIR, DEFAULT_PROFILES_DIR, PerfModel
from planner.perf.prior import ALLREDUCES_PER_LAYER, decode_parts

SIZES = np.array([2.0**k for k in range(13, 29)])


def _alpha_beta(n: int, lat_s: float, bw: float) -> np.ndarray:
    return lat_s + 2.0 * (n - 1) / n * SIZES / bw


def test_ring_law_recovers_alpha_and_beta() -> None:
    law = fit_ring(4, SIZES, _alpha_beta(4, 12e-6, 300e9))
    # the latency is read at the smallest size, where the bandwidth term adds 8 KiB*1.5/300 GB/s = 41 ns
    assert law.latency_s == pytest.approx(12e-6, rel=0.01)
    assert law.bus_bytes_per_s == pytest.approx(300e9, rel=1e-6)
    assert law.max_rel_err < 0.01


def test_table_interpolates_measured_sizes_and_extends_beyond() -> None:
    rows = []
    for n, bw in ((2, 320e9), (4, 350e9)):
        for b, t in zip(SIZES, _alpha_beta(n, 11e-6, bw)):
            rows += [{"n_gpus": n, "mode": "eager", "bytes": b, "time_us": t * 1e6 + 30.0},  # launch-bound eager
                     {"n_gpus": n, "mode": "graph", "bytes": b, "time_us": t * 1e6}]
    tab = table_from_frame("H100-SXM-80GB", pd.DataFrame(rows))
    # the faster mode at each size, exactly at measured sizes
    assert tab.seconds(2, SIZES[5]) == pytest.approx(_alpha_beta(2, 11e-6, 320e9)[5], rel=1e-9)
    # below the smallest size: the latency floor; beyond the largest: the fitted bandwidth
    assert tab.seconds(4, 10.0) == pytest.approx(_alpha_beta(4, 11e-6, 350e9)[0], rel=1e-9)
    big = 4 * SIZES[-1]
    assert tab.seconds(4, big) == pytest.approx(11e-6 + 1.5 * big / 350e9, rel=1e-3)
    # a group size not measured: the law of the largest measured group, with its own ring factor
    assert tab.seconds(8, big) == pytest.approx(11e-6 + 1.75 * big / 350e9, rel=1e-3)


def test_bad_tables_name_the_column() -> None:
    with pytest.raises(InputError) as e:
        table_from_frame("X", pd.DataFrame({"n_gpus": [2], "bytes": [1], "time_us": [1]}), "t.csv")
    assert "mode" in str(e.value) and "t.csv" in str(e.value)
    with pytest.raises(InputError) as e:
        table_from_frame("X", pd.DataFrame({"n_gpus": [2, 2], "mode": ["g", "g"], "bytes": [1, 2], "time_us": [5, -1]}))
    assert "time_us" in str(e.value)
    with pytest.raises(InputError) as e:
        table_from_frame("X", pd.DataFrame({"n_gpus": [2], "mode": ["g"], "bytes": [1], "time_us": [5]}))
    assert "two message sizes" in str(e.value)


def test_bundled_h100_measurement_is_physical() -> None:
    tab = load_allreduce(DEFAULT_PROFILES_DIR / ALLREDUCE_DIR)["H100-SXM-80GB"]
    link = Catalog.load().gpu("H100-SXM-80GB").intra_link_gb_s * 1e9
    for n in (2, 4):
        law = tab.laws[n]
        assert 5e-6 < law.latency_s < 30e-6  # NCCL small-message latency under CUDA graphs
        assert 0.5 * link < law.bus_bytes_per_s < link  # below the NVLink datasheet, not far below
        xs, ts = tab.sizes[n]
        assert np.all(np.diff(ts) > -0.2 * ts[:-1])  # time grows with size, give or take noise


def test_prior_uses_the_measured_comm_time() -> None:
    pm = PerfModel.load()
    cat = pm.catalog
    assert "H100-SXM-80GB" in pm.allreduce
    model, gpu = cat.model("llama-3.1-70b"), cat.gpu("H100-SXM-80GB")
    batch = np.array([1.0, 64.0])
    measured = decode_parts(model, gpu, 4, batch, np.array([1024.0, 1024.0]), pm.allreduce["H100-SXM-80GB"]).comm_ms
    datasheet = decode_parts(model, gpu, 4, batch, np.array([1024.0, 1024.0])).comm_ms
    want = model.layers * ALLREDUCES_PER_LAYER * pm.allreduce["H100-SXM-80GB"].seconds(4, batch * model.hidden * 2) * 1e3
    assert measured == pytest.approx(want)
    assert not np.allclose(measured, datasheet)  # the measurement, not the datasheet, sets the term
