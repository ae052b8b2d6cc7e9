"""What the controller reads from an llm-d P/D fleet, with and without the role label on the series.

    .venv/bin/python bench/llmd_observe.py [--rate-rps 4] [--isl 1000] [--osl 100] [--repeats 3]

One prefill and one decode pod of a P/D deployment, as FAKE vLLM 0.26.0 metric endpoints
(tests/llmd_exporters.py; no GPU here) with known truth: `rate` requests/s, prompt `isl`, output
`osl` tokens, TTFT 0.3 s on prefill and 0.04 s on decode, per-request mean time per output token
0.04 s, per-token gap 0.02 s. A REAL Prometheus (Debian binary, started on loopback) scrapes them
(a) with the relabelings of the shipped PodMonitor (controllers/deploy/examples/podmonitor.yaml:
llm-d.ai/role -> role), and (b) without (llm-d-modelservice's own PodMonitor), where the default
observation refuses and the old behaviour (missing_role: mixed) is shown. Rates are read once a
whole rate window is in; each row is the median of `repeats` observations one second apart.
Histogram quantiles (p90) interpolate inside vLLM-style buckets, so latencies land in a bucket's
range, not on the exact value.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

sys.path.insert(0, str(ROOT / "bench"))

from bench_input import require  # noqa: E402
from controller_prom import require_prometheus, wait_for  # noqa: E402
from controllers.config import PrometheusConfig  # noqa: E402
from controllers.observe import PrometheusObserver  # noqa: E402
from llmd_exporters import FakeVllmPod, PodLoad, PodMonitorPrometheus, podmonitor_relabelings  # noqa: E402

MODEL, SERVED = "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"
PODMONITOR = ROOT / "controllers" / "deploy" / "examples" / "podmonitor.yaml"


def labels(role: str) -> dict[str, str]:
    return {"llm-d.ai/inference-serving": "true", "llm-d.ai/model": "meta-llama-llama-3-1-8b-instruct", "llm-d.ai/role": role}


def observer(url: str, **kw) -> PrometheusObserver:
    return PrometheusObserver(PrometheusConfig(url=url, rate_window_s=4, staleness_s=10, timeout_s=2, **kw), {MODEL: SERVED}, {MODEL: 90.0})


def sample(url: str, repeats: int, min_rps: float, **kw) -> dict[str, float]:
    wait_for(lambda: (lambda o: o.ok and o.models[MODEL].completion_rps > min_rps and o.models[MODEL].itl_ms)(
        observer(url, **kw).observe()), 60)
    rows = []
    for _ in range(repeats):
        m = observer(url, **kw).observe().models[MODEL]
        rows.append({"completion_rps": m.completion_rps, "mean_osl": m.mean_osl or 0.0, "ttft_ms": m.ttft_ms or 0.0, "itl_ms": m.itl_ms or 0.0})
        time.sleep(1.0)
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate-rps", type=float, default=4.0, help="requests per second the fake endpoints report")
    ap.add_argument("--isl", type=int, default=1000, help="prompt tokens per request")
    ap.add_argument("--osl", type=int, default=100, help="output tokens per request")
    ap.add_argument("--repeats", type=int, default=3, help="observations per row, one second apart (median kept)")
    a = ap.parse_args(argv)
    # the numbers in their ranges before Prometheus starts (found in QA: --repeats 0 was an IndexError traceback after
    # the pods and Prometheus had run, --rate-rps 0 a wait for a completion rate above 0 that never came, --osl 0 a
    # ZeroDivisionError in the RESULT line)
    require(0 < a.rate_rps < math.inf, "--rate-rps", "a finite number of requests per second > 0", a.rate_rps)
    for flag, n in (("--isl", a.isl), ("--osl", a.osl), ("--repeats", a.repeats)):
        require(n >= 1, flag, "a whole number >= 1", n)
    try:
        require_prometheus()
    except BaseException:  # pytest.skip outside pytest
        sys.exit("Prometheus binary not found: run tests/setup_prometheus.sh")
    pre = PodLoad(a.rate_rps, a.isl, 1, ttft_s=0.3, tpot_request_s=0.0, itl_token_s=0.0)
    dec = PodLoad(a.rate_rps, a.isl, a.osl, ttft_s=0.04, tpot_request_s=0.04, itl_token_s=0.02)
    out: dict[str, dict[str, float] | str] = {}
    with tempfile.TemporaryDirectory() as tmp, FakeVllmPod(SERVED, pre) as pf, FakeVllmPod(SERVED, dec) as dc:
        pods = [(pf.addr, labels("prefill")), (dc.addr, labels("decode"))]
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        with PodMonitorPrometheus(Path(tmp) / "a", pods, podmonitor_relabelings(PODMONITOR)) as prom:
            out["roles (shipped PodMonitor)"] = sample(prom.url, a.repeats, 0.75 * a.rate_rps)
            out["roles, per-token ITL histogram"] = sample(prom.url, a.repeats, 0.75 * a.rate_rps, itl_metric="per_token")
        unlabelled = [(addr, {k: v for k, v in lab.items() if k != "llm-d.ai/role"}) for addr, lab in pods]
        with PodMonitorPrometheus(Path(tmp) / "b", unlabelled, []) as prom:
            o = wait_for(lambda: (lambda x: x if not x.ok and "role" in x.reason else None)(observer(prom.url).observe()), 60)
            out["no role label (default: hold)"] = o.reason.split(":")[0]
            out["no role label read as mixed (old)"] = sample(prom.url, a.repeats, 1.5 * a.rate_rps, missing_role="mixed")
    print(f"truth: completion {a.rate_rps:g} rps, mean OSL {a.osl}, p90 TTFT client 340 ms (300 prefill + 40 decode), "
          f"per-request ITL 40 ms, per-token ITL 20 ms")
    print(f"{'series':36} {'completion_rps':>15} {'mean_osl':>9} {'ttft_ms':>8} {'itl_ms':>7}")
    for name, r in out.items():
        if isinstance(r, str):
            print(f"{name:36} observation not ok: {r}")
        else:
            print(f"{name:36} {r['completion_rps']:15.2f} {r['mean_osl']:9.1f} {r['ttft_ms']:8.0f} {r['itl_ms']:7.1f}")
    good, old = out["roles (shipped PodMonitor)"], out["no role label read as mixed (old)"]
    assert isinstance(good, dict) and isinstance(old, dict)
    print(f"RESULT completion_ratio_roles={good['completion_rps'] / a.rate_rps:.2f} completion_ratio_mixed={old['completion_rps'] / a.rate_rps:.2f} "
          f"osl_ratio_roles={good['mean_osl'] / a.osl:.2f} osl_ratio_mixed={old['mean_osl'] / a.osl:.2f} "
          f"itl_request_ms={good['itl_ms']:.1f} itl_token_ms={out['roles, per-token ITL histogram']['itl_ms']:.1f} "  # type: ignore[index]
          f"ttft_pd_ms={good['ttft_ms']:.0f} ttft_mixed_ms={old['ttft_ms']:.0f}")


if __name__ == "__main__":
    main()
