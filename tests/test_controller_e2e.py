"""End to end: emulated vLLM replicas -> a REAL Prometheus -> the controller loop -> Kubernetes API.

Real parts: the Prometheus server (Debian package, tests/controller_prom.py), the controller
(controllers.loop.Controller with PrometheusObserver, the real ILP and KubernetesActuator using
the official client), HTTP everywhere on loopback. Fakes of EXTERNAL systems: the vLLM engines
(planner.simulate.emulator, GPU-less, timed by the bundled Llama-2-70B/H100 tp2 profile), the
Kubernetes API server (tests/controller_k8s_fake.py: no kube-apiserver can run here), and the
Deployment controller + kubelet, played by `Kubelet` below: when the controller changes a
Deployment's replicas it starts or stops emulated replicas, reports them ready and reloads
Prometheus' scrape targets. The load generator (tests/controller_load.py) is a P/D proxy.

Scenario: low load -> high load (the decode pool must scale up within the expected intervals) ->
low load (the decode pool scales down, but only after the scale-down stabilization window).
Time runs 5x faster than real time (emulator time_scale 0.2); the controller's clock and config
are in emulated seconds.
"""

from __future__ import annotations

import time

import pytest

from controller_k8s_fake import FakeK8sServer
from controller_load import Backends, LoadGenerator
from controller_prom import PrometheusServer, require_prometheus, wait_for
from controllers.actuate import KubernetesActuator
from controllers.config import ControllerConfig, ForecastConfig, GuardConfig, ModelConfig, PrometheusConfig
from controllers.loop import Controller
from controllers.observe import PrometheusObserver
from planner.io.schema import Fleet, FleetLimits, GpuInventory, Slo
from planner.simulate.emulator import EmulatorFleet

pytestmark = pytest.mark.slow  # ~40 s wall: three load phases of a few control intervals each

MODEL, SERVED, GPU, NS = "llama-2-70b", "meta-llama/Llama-2-70b-hf", "H100-SXM-80GB", "llm"
P, D = f"{MODEL}/prefill/{GPU}/tp2", f"{MODEL}/decode/{GPU}/tp2"
TS = 0.2            # wall seconds per emulated second
INTERVAL_S = 15.0   # control interval (emulated s) = 3 wall s
STAB_S = 45.0       # scale-down stabilization (emulated s) = 3 intervals
RATE_WINDOW_WALL_S = 3.0  # PromQL rate() window: 6 scrapes at tests/controller_prom.py's 500 ms
ISL, OSL = 128, 128
# Loads (emulated req/s) chosen from the ILP with this SLO (TTFT p90 2 s, ITL p90 50 ms, a vLLM
# histogram bucket edge): 0.5 req/s needs 1 prefill + 1 decode replica, 4 req/s needs 2 decode
# replicas (decode steps ~37 ms + 0.41 ms per sequence on this profile).
LOW_RPS, HIGH_RPS = 0.5, 4.0
T_HIGH, T_LOW = 2 * INTERVAL_S, 6 * INTERVAL_S  # phase starts, emulated s after the load starts
SLO = Slo(ttft_ms=2000, itl_ms=50, percentile=90)


def now_emulated() -> float:
    return time.monotonic() / TS


class Kubelet:
    """Plays the Deployment controller + kubelets: keeps each pool's emulated replicas equal to the
    Deployment's spec.replicas, reports them ready, and points Prometheus and the proxy at them."""

    def __init__(self, srv: FakeK8sServer, fleets: dict[str, EmulatorFleet], prom: PrometheusServer, backends: Backends):
        self.srv, self.fleets, self.prom, self.backends = srv, fleets, prom, backends
        self.active: dict[str, list[int]] = {name: [0] for name in fleets}

    def targets(self) -> dict[str, tuple[str, list[str]]]:
        out = {}
        for name, pool, role in (("p", P, "prefill"), ("d", D, "decode")):
            out[pool] = (role, [self.fleets[name].servers[i].url.removeprefix("http://") for i in self.active[name]])
        return out

    def publish(self) -> None:
        for name, role in (("p", "prefill"), ("d", "decode")):
            self.backends.set(role, [self.fleets[name].servers[i].url for i in self.active[name]])

    def reconcile(self) -> None:
        changed = False
        for name in ("p", "d"):
            want = self.srv.state.replicas("deployment", NS, name)
            fleet, act = self.fleets[name], self.active[name]
            while len(act) < want:
                fleet.add_replica()
                act.append(len(fleet.servers) - 1)
                changed = True
            while len(act) > max(want, 0):
                i = act.pop()  # a Deployment removes the newest pod first
                self.publish()  # the proxy stops sending to it, then it drains and stops
                eng = fleet.servers[i].engine
                deadline = time.monotonic() + 3
                while eng is not None and (eng.running or eng.waiting) and time.monotonic() < deadline:
                    time.sleep(0.05)
                fleet.stop_replica(i)
                changed = True
            self.srv.state.set_ready("deployment", NS, name, len(act))
        if changed:
            self.publish()
            self.prom.reload(self.targets())


@pytest.fixture(scope="module")
def perf():
    from planner.perf.laws import PerfModel

    return PerfModel.load()


def test_decode_pool_scales_up_with_load_and_down_after_stabilization(tmp_path, perf):
    require_prometheus()
    vp = perf.get(MODEL, GPU, 2)
    assert vp is not None, "bundled llama-2-70b H100 tp2 profile missing"
    fleets = {"p": EmulatorFleet(vp, 1, model_name=SERVED, time_scale=TS),
              "d": EmulatorFleet(vp, 1, model_name=SERVED, time_scale=TS)}
    with fleets["p"], fleets["d"], FakeK8sServer() as srv:
        for name, role in (("p", "prefill"), ("d", "decode")):
            srv.state.add_workload("deployment", NS, name, {"pd-planner.io/model": MODEL, "pd-planner.io/role": role,
                                                            "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "2"}, 1)
        backends = Backends()
        targets = {P: ("prefill", [fleets["p"].urls[0].removeprefix("http://")]),
                   D: ("decode", [fleets["d"].urls[0].removeprefix("http://")])}
        with PrometheusServer(tmp_path, targets) as prom:
            kubelet = Kubelet(srv, fleets, prom, backends)
            kubelet.publish()
            cfg = ControllerConfig(
                interval_s=INTERVAL_S, startup_s=0.0, fleet="-",
                models={MODEL: ModelConfig(served_name=SERVED, slo=SLO)},
                prometheus=PrometheusConfig(url=prom.url, rate_window_s=RATE_WINDOW_WALL_S, staleness_s=5, timeout_s=2),
                # hold_trend: the window holds the peak recommendation, trend included (what is tested here);
                # rise_noise_sigmas: the low phase has ~6 requests per interval, where a 5% "rise" is counting noise;
                # spike_noise_sigmas (default 3) likewise: there 1.3 x the median (spike_ratio) is one extra request,
                # and two such "spikes" held the high phase's peak for good (CI, stop 27: never scaled back down)
                forecast=ForecastConfig(quantile=0.9, hold_trend=True, rise_noise_sigmas=2.0),
                guard=GuardConfig(scale_down_stabilization_s=STAB_S, scale_down_cooldown_s=0.0),
            )
            fleet = Fleet(gpus={GPU: GpuInventory(available=16)},
                          limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"], default_min_replicas=1))
            observer = PrometheusObserver(cfg.prometheus, {MODEL: SERVED}, {MODEL: SLO.percentile}, time_scale=TS)
            actuator = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, max_retries=2)
            ctl = Controller(cfg, fleet, observer, actuator, perf, clock=now_emulated)

            wait_for(lambda: observer.observe().ok, 15)  # both targets scraped
            t0 = now_emulated()
            load = LoadGenerator(backends, SERVED, lambda t: HIGH_RPS if T_HIGH <= t - t0 < T_LOW else LOW_RPS,
                                 isl=ISL, osl=OSL, time_scale=TS, max_requests=3000, max_duration_s=60, seed=1).start()
            notes: list[str] = []
            history: list[tuple[float, int, int]] = []  # (emulated s since t0, prefill, decode) after each step
            overrun: list[float] = [0.0]  # emulated s by which a step + reconcile outlasted its interval (machine noise)
            deadline = T_LOW + STAB_S + 6 * INTERVAL_S
            try:
                while now_emulated() - t0 < deadline:
                    start = now_emulated()
                    dec = ctl.step()
                    kubelet.reconcile()
                    n_p, n_d = srv.state.replicas("deployment", NS, "p"), srv.state.replicas("deployment", NS, "d")
                    history.append((start - t0, n_p, n_d))
                    notes.append(f"{start - t0:.0f}s {dec.outcome} fc={dec.forecast_rps} obs={ {m: round(o['arrival_rps'], 2) for m, o in dec.observed.items()} } "
                                 f"{'; '.join(dec.reasons + dec.errors)}")
                    if start - t0 > T_LOW and n_d < max(h[2] for h in history):
                        break  # scaled down from the peak: the scenario is complete
                    overrun.append(max(0.0, now_emulated() - start - INTERVAL_S))
                    time.sleep(max(0.0, (INTERVAL_S - (now_emulated() - start)) * TS))
            finally:
                load.stop()

    trace = ", ".join(f"{t:.0f}s:{p}P{d}D" for t, p, d in history) + "\n" + "\n".join(notes)
    assert load.stats.ok > 100, f"load generator: {load.stats}"
    ups = [t for t, _, d in history if d > 1]
    assert ups, f"the decode pool never scaled up: {trace}"
    # expected: one rate window (1 interval) for Prometheus to see the load, then one decision;
    # allowed: 3 intervals, plus what this machine's noise cost (the steps' overruns, measured above):
    # on a loaded CPU a step can outlast its interval, and the next decision comes that much later.
    # The emulator keeps virtual time (planner/simulate/emulator.py), so latencies do not grow with load.
    slack = 3 * INTERVAL_S + 1 + 3 * max(overrun)
    assert T_HIGH <= ups[0] <= T_HIGH + slack, f"scale-up at {ups[0]:.0f}s, load rose at {T_HIGH:.0f}s (max overrun {max(overrun):.1f}s): {trace}"
    assert all(d == 1 for t, _, d in history if t < T_HIGH), f"scaled before the load rose: {trace}"
    peak = max(d for _, _, d in history)
    t_peak = next(t for t, _, d in history if d == peak)
    downs = [t for t, _, d in history if t > t_peak and d < peak]
    assert downs, f"the decode pool never scaled back down: {trace}"
    # no release of decode capacity within the stabilization window after the load dropped
    assert downs[0] - T_LOW >= STAB_S - 1, f"scaled down at {downs[0]:.0f}s, load fell at {T_LOW:.0f}s: {trace}"
    assert all(p == 1 for _, p, _ in history), f"prefill should stay at 1 replica for these loads: {trace}"
    reasons = [e["reason"] for e in srv.state.events(NS)]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons
    assert ("configmap", NS, "pd-planner-routing") in srv.state.objects
