"""Grids, ordering, early stop and resumption of profiles.sweep, and the profile store of
profiles.format (pure, no server)."""

from __future__ import annotations

import pytest

from profiles import format as pfmt
from profiles import sweep


def test_default_grids_match_design():
    pts = sweep.prefill_grid()
    assert len(pts) == 8 * 4 and pts[0].key == (128, 1) and pts[-1].key == (16384, 8)
    dec = sweep.decode_grid()
    assert len(dec) == 9 * 5 and dec[0].key == (1, 512) and dec[-1].key == (256, 8192)


def test_decode_grid_skips_points_that_do_not_fit_the_kv_cache():
    pts = sweep.decode_grid(kv_capacity_tokens=100_000, decode_tokens=64)
    assert all(p.batch * (p.context + 64) <= 100_000 for p in pts)
    assert (256, 8192) not in {p.key for p in pts} and (1, 8192) in {p.key for p in pts}
    assert all(p.batch <= 32 for p in sweep.decode_grid(max_num_seqs=32))


def test_parse_int_list_errors_name_the_item():
    assert sweep.parse_int_list("512, 128,128", ()) == (128, 512)
    assert sweep.parse_int_list(None, (1, 2)) == (1, 2)
    with pytest.raises(ValueError, match="'x'"):
        sweep.parse_int_list("1,x", ())
    with pytest.raises(ValueError, match="positive"):
        sweep.parse_int_list("0", ())


def test_latency_cap_stops_dominated_points_and_stop_axis_too():
    pts = sweep.decode_grid(batches=(1, 2, 4), contexts=(100, 200, 400))
    law = {p.key: p.batch * p.context / 10 for p in pts}  # 10 .. 160 ms

    def measure(p):
        if p.key == (1, 400):
            raise sweep.StopAxis("KV cache full")
        return law[p.key]

    recorded = []
    out = sweep.run_sweep(pts, measure, lambda p, ms: recorded.append(p.key), latency_cap_ms=50)
    # (2, 400), (4, 400) are dominated by the StopAxis at (1, 400); (4, 200) at 80 ms passes the 50 ms cap
    assert (1, 400) in out.stop_reasons and "KV" in out.stop_reasons[(1, 400)]
    assert (2, 400) in out.dominated and (4, 400) in out.dominated
    assert (4, 200) in out.measured and out.stop_reasons[(4, 200)].startswith("latency 80.0 ms")
    assert recorded == out.measured
    assert all(law[k] <= 80 for k in recorded)


def test_resumed_points_are_not_measured_again_and_keep_their_stop():
    pts = sweep.prefill_grid(isls=(128, 256), batches=(1, 2))
    calls = []
    done = {(128, 1): 10.0, (128, 2): 999.0}  # the second was over the cap in the first run
    out = sweep.run_sweep(pts, lambda p: calls.append(p.key) or 5.0, lambda p, ms: None, done=done, latency_cap_ms=100)
    assert calls == [(256, 1)]
    assert out.resumed == [(128, 1), (128, 2)] and (256, 2) in out.dominated


def test_profile_store_is_resumable_and_readable_by_the_planner(tmp_path):
    from planner.perf.profiledata import read_decode, read_prefill

    st = pfmt.ProfileStore(tmp_path)
    st.add_prefill(128, 1, [10.0, 12.0, 11.0])
    st.add_decode(4, 512, [7.0, 7.2])
    again = pfmt.ProfileStore(tmp_path)
    assert again.prefill_done() == {(128, 1): 11.0} and again.decode_done() == {(4, 512): 7.1}
    pre = read_prefill(tmp_path / "prefill.csv")
    assert pre.ttft_ms.tolist() == [11.0] and pre.stat.tolist() == ["median"]
    assert read_decode(tmp_path / "decode.csv").itl_ms.tolist() == [7.1]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def test_seed_subset_has_corners_and_midpoints():
    keys = [(b, c) for b in (1, 2, 4, 8, 16) for c in (512, 1024, 2048)]
    seed = sweep.seed_subset(keys)
    assert {(1, 512), (1, 2048), (16, 512), (16, 2048), (4, 1024)} <= set(seed)
    assert len(seed) < len(keys)


class _FakeOutOfMemory(RuntimeError):
    """Stands in for torch.OutOfMemoryError (torch is an optional extra, absent in CI)."""


def test_out_of_memory_stops_the_axis_without_holding_the_failed_pass():
    """The torch backend turns a device out-of-memory error into a StopAxis that keeps no reference to it: raised
    inside the except clause it kept the error as __context__, whose traceback held the failed pass's frames (and so
    its device tensors): on the H100 the decode sweep's KV pool then could not be allocated (stop 43)."""
    import gc
    import weakref

    from profiles import sweep
    from profiles.backends.torch_ref import stop_on_out_of_memory

    class Activation:
        """A tensor the failed pass held in its frame."""

    held: list[weakref.ref] = []

    def failing_pass() -> float:
        act = Activation()
        held.append(weakref.ref(act))
        raise _FakeOutOfMemory("CUDA out of memory. Tried to allocate 512.00 MiB\nmore detail")

    with pytest.raises(sweep.StopAxis) as info:
        stop_on_out_of_memory(failing_pass, _FakeOutOfMemory, "prefill isl=16384 batch=8")
    stop = info.value
    assert stop.__context__ is None and stop.__cause__ is None
    assert stop.reason == "out of device memory at prefill isl=16384 batch=8: CUDA out of memory. Tried to allocate 512.00 MiB"
    gc.disable()  # freed by reference counting alone, not only by a later collection
    try:
        assert held[0]() is None
    finally:
        gc.enable()
    assert stop_on_out_of_memory(lambda: 3.5, _FakeOutOfMemory, "x") == 3.5
    with pytest.raises(ValueError):  # any other error propagates
        stop_on_out_of_memory(lambda: (_ for _ in ()).throw(ValueError("bad")), _FakeOutOfMemory, "x")


@pytest.mark.parametrize(("rounds", "want_rounds", "want_central"), [
    ([[20.0, 21.0, 22.0]], 1, 21.0),                                  # above the floor: one round
    ([[10.0, 10.5, 11.0], [19.0, 19.5, 20.0], [19.0, 19.5, 20.0]], 3, 19.8),  # retried, still low: raised to 19.8
    ([[10.0, 10.5, 11.0], [19.5, 19.8, 20.0], [19.9, 20.5, 21.0]], 3, 19.8),  # retried until the median clears it
    ([[10.0, 10.5, 11.0], [30.0, 30.0, 30.0]], 2, 20.5),              # one retry lifts the pooled median
])
def test_measured_with_floor_retries_then_raises(rounds, want_rounds, want_central):
    """The torch backend's points (stop 43: its first prefill point ran 17% above the next, and the loader refused the
    profile): a round whose median is below 0.9 x the largest latency at smaller work is measured again, at most
    MONOTONE_RETRIES times, and the central value is raised to that floor if still below it."""
    done = {(128, 1): 22.0}  # floor for (256, 1): 0.9 x 22.0 = 19.8
    it = iter(rounds)
    calls = []

    def one_round() -> list[float]:
        calls.append(1)
        return list(next(it))

    samples, central = sweep.measured_with_floor((256, 1), done, one_round)
    assert len(calls) == want_rounds == min(len(rounds), 1 + sweep.MONOTONE_RETRIES)
    assert len(samples) == 3 * want_rounds
    assert central == pytest.approx(want_central)
