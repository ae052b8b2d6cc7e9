"""``planner profile ...`` (measure a variant into a profile directory) and ``planner profile show DIR``.

  planner profile --backend vllm --model llama-3.1-8b --gpu H100-SXM-80GB --tp 1            # launch vllm serve
  planner profile --backend vllm --endpoint http://host:8000 --model ... --gpu ... --tp 1  # attach
  planner profile --backend torch --model llama-3.1-8b --gpu H100-SXM-80GB                 # reference decoder
  planner profile show profiles/data/llama-3.1-8b/H100-SXM-80GB/tp1

The output directory defaults to profiles/data/<model>/<gpu>/tp<N>[-fp8][-kvfp8]/vllm of the package (the torch
backend's: tp<N>), where the planner reads profiles; it is resumable: points already there are not measured again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.table import Table

from planner.cli.console import F, command_group, figure_path, friendly_errors
from planner.io.errors import InputError
from planner.io.validate import MAX_PORT, check_max_model_len

if TYPE_CHECKING:  # the heavy modules load inside the commands (a fast --help)
    from rich.console import Console

    from planner.io.catalog import Catalog
    from planner.io.schema import Dtype
    from planner.perf.laws import PerfModel, VariantPerf


class PrefillMethod(StrEnum):
    """How the vLLM backend times a prefill point (profiles/backends/vllm.py's module doc)."""

    engine = "engine"
    blocker = "blocker"


def _friendly(fn: F) -> F:
    """planner.cli.console.friendly_errors, and Ctrl-C says that the measured points are kept."""
    checked = friendly_errors(fn)

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return checked(*args, **kwargs)
        except KeyboardInterrupt:
            from rich.console import Console

            Console(stderr=True).print("[yellow]interrupted:[/] measured points are kept; rerun the same command to resume")
            raise typer.Exit(130) from None

    return cast(F, wrapper)


def _ints(text: str | None, default: Sequence[int], field: str) -> tuple[int, ...]:
    from profiles import sweep

    try:
        return sweep.parse_int_list(text, default)
    except ValueError as exc:
        raise InputError(None, field, str(exc)) from None


def _check_positive_finite(options: Sequence[tuple[str, float | None]]) -> None:
    """Exit 2 naming the first option (name, value; None where not given) that is not a positive finite number, before
    any work. Found in QA: `--health-timeout-s nan` waited on a dead endpoint until interrupted, `-5` reported "not
    healthy after -5 s", and negative latency caps and SLO bounds reached the health wait (click's ranges let NaN
    through, and these options had none)."""
    for name, value in options:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(None, name, f"expected a positive finite number, got {value:g}")


def _check_finite(options: Sequence[tuple[str, float]]) -> None:
    """Exit 2 naming the first option (name, value) that is not finite, before any work: click's `min=` ranges let
    `inf` through (found in QA: `--rate-duration-s inf`, `--rate-warmup-s inf` and `--rate-settle-s inf` ended in an
    OverflowError traceback after the prefill and decode sweeps; `--time-scale inf` wrote a decode.csv of 0.0 ms
    steps that its own loader then refused, exit 2 after the work)."""
    for name, value in options:
        if not math.isfinite(value):
            raise InputError(None, name, f"expected a finite number, got {value:g}")


def _floats(text: str | None, field: str, what: str = "rates") -> tuple[float, ...]:
    if not text:
        return ()
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(None, field, f"expected a comma-separated list of numbers, got {text!r}") from None
    if any(not (math.isfinite(v) and v > 0) for v in vals):  # NaN and inf passed "<= 0" (stop 49)
        raise InputError(None, field, f"expected positive finite {what}, got {text!r}")
    return vals


# Shares of the capacity model's saturation rate a load sweep offers by default (`planner profile rates`): the design
# of plans h6 and h9 (stops 42 and 44), which measured the saturation of two held-out models within 1%.
RATE_SHARES = (0.35, 0.6, 0.8, 0.95, 1.05, 1.2)
# The latency percentile a saturation rate is judged at here: the benches' (bench/fidelity.py PERCENTILE), whose
# measured saturation rates planner/planning/saturation.py was checked against.
RATE_PERCENTILE = 90.0


def saturation_by_isl(perf: VariantPerf, isls: Sequence[int], osl: int, percentile: float = RATE_PERCENTILE,
                      osl_scv: float = 0.0, isl_scv: float = 0.0, isl_max: float | None = None) -> dict[int, float]:
    """Per ISL, the capacity model's saturation rate of one mixed replica with `perf`'s laws (prompts and outputs spread
    as the rate sweep draws them; planner/planning/saturation.py)."""
    from planner.planning import capacity
    from planner.planning.saturation import saturation_rps

    shape = capacity.ArrivalShape(isl_scv=isl_scv, isl_max=isl_max, osl_scv=osl_scv)
    return {x: saturation_rps(perf, "mixed", float(x), float(osl), percentile, shape) for x in isls}


RATES_ISL_DEFAULT = "1024,4096"
"""`planner profile rates --isl` default: the two prompt lengths of the committed held-out load sweeps."""


def rates_from_shares(saturation: dict[int, float], shares: Sequence[float]) -> dict[int, tuple[float, ...]]:
    """Per ISL, `shares` x its saturation rate, rounded to 3 significant digits as `--rates-by-isl` takes them."""
    return {x: tuple(float(f"{sat * f:.3g}") for f in shares) for x, sat in saturation.items()}


def rates_by_isl_text(rates: dict[int, tuple[float, ...]]) -> str:
    """{1024: (3.0, 8.0)} -> '1024=3,8' (the --rates-by-isl syntax)."""
    return ";".join(f"{x}=" + ",".join(f"{r:g}" for r in rs) for x, rs in rates.items())


def _shares(text: str, field: str) -> tuple[float, ...]:
    """A required comma list of positive shares (of a saturation rate)."""
    shares = _floats(text, field, "shares")
    if not shares:
        raise InputError(None, field, f"expected a comma-separated list of positive shares, got {text!r}")
    return shares


def _cannot_run(console: Console, variant: str, catalog: Catalog, model: str, gpu: str, tp: int,
                weight_dtype: Dtype = "bf16", kv_dtype: Dtype = "bf16") -> typer.Exit:
    """Say why `variant` cannot run (PerfModel.get gave no laws) and return the exit to raise: exit 3, infeasible."""
    from planner.cli.console import EXIT_INFEASIBLE
    from planner.perf.laws import cannot_run_reason

    console.print(f"{variant}: cannot run: {cannot_run_reason(catalog, model, gpu, tp, weight_dtype, kv_dtype)}")
    return typer.Exit(EXIT_INFEASIBLE)


def _rates_by_isl(text: str | None) -> dict[int, tuple[float, ...]]:
    """'1024=3,8,14;4096=2,4' -> {1024: (3, 8, 14), 4096: (2, 4)}."""
    out: dict[int, tuple[float, ...]] = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        isl, sep, rates = part.partition("=")
        if not sep or not isl.strip().isdigit() or int(isl) <= 0:
            raise InputError(None, "--rates-by-isl", f"expected ISL=RATE,RATE;... with a positive integer ISL, got {part!r}")
        out[int(isl)] = _floats(rates, "--rates-by-isl")
        if not out[int(isl)]:  # found in QA: '1024=' ran no rate sweep at all, without a word
            raise InputError(None, "--rates-by-isl", f"expected at least one rate for ISL {int(isl)}, got {part!r}")
    return out


def _rate_isls(by_isl: str | None, isls: str | None, isl: int) -> tuple[int, ...]:
    if by_isl and not isls:
        return tuple(_rates_by_isl(by_isl))
    return _ints(isls, (isl,), "--rate-isls")


def _check_max_model_len(max_model_len: int, model: str, context: int | None, prefill_isls: Sequence[int],
                         rate_isls: Sequence[int], rate_osl: int) -> None:
    """Before a launch or a health wait: a --max-model-len vLLM refuses (validate.check_max_model_len), or one that
    leaves no prefill point or cuts a rate sweep's requests (prompt + output beyond it: the server rejects them), is
    exit 2."""
    check_max_model_len(max_model_len, model, context)
    if min(prefill_isls) >= max_model_len:
        raise InputError(None, "--max-model-len", f"room for a prompt of the prefill grid (its shortest is "
                         f"{min(prefill_isls):,} tokens, plus one output token); got {max_model_len:,}")
    over = [x for x in rate_isls if x + rate_osl > max_model_len]
    if over:
        raise InputError(None, "--max-model-len", f"room for the rate sweep's requests: ISL {over[0]:,} + OSL {rate_osl:,} "
                         f"= {over[0] + rate_osl:,} tokens; got {max_model_len:,}")


def _check_rate_requests_fit(context: int, model: str, rate_isls: Sequence[int], rate_osl: int, option: str) -> None:
    """Without --max-model-len the server serves the model's context (vLLM's default, and the launch's): a rate sweep's
    request of prompt + output beyond it is rejected, so it is exit 2 naming `option` before any work (found in QA:
    `--rates 1 --rate-isl 200000` on llama-3.1-8b, 131,072 tokens, measured the prefill and decode sweeps, then the
    rate sweep's first request got HTTP 400)."""
    over = [x for x in rate_isls if x + rate_osl > context]
    if over:
        raise InputError(None, option, f"rate-sweep requests within {model}'s context of {context:,} tokens: ISL "
                         f"{over[0]:,} + OSL {rate_osl:,} (--rate-osl) = {over[0] + rate_osl:,} tokens")


def _other_models_served_names(cat: Catalog, model: str, hf_model: str | None) -> dict[str, str]:
    """The names (lower case) a server would serve another catalog model under (its catalog name, its hf_id), to
    that model: an attached endpoint serving one of them is not --model's (VllmRunConfig.other_models). --model's
    own names and --hf-model are left out."""
    mine = {model.lower(), (hf_model or "").lower(), (cat.models[model].hf_id or "").lower()}
    out: dict[str, str] = {}
    for name, spec in cat.models.items():
        for alias in (name, spec.hf_id):
            if alias and alias.lower() not in mine:
                out.setdefault(alias.lower(), name)
    return out


_ENGINE_LIMIT_FIELDS: frozenset[str] = frozenset({"max_batched_tokens", "max_num_seqs"})
"""meta.yaml's engine limits (vLLM --max-num-batched-tokens / --max-num-seqs) a resumed --out must share."""


def _check_resumes_the_same_variant(directory: Path, wanted: dict[str, tuple[object, str]]) -> None:
    """Before any work: an --out folder holding a complete profile (its meta.yaml) is resumed, its points kept as
    measured, so it must be of the variant this run measures; another's points would be relabelled as this one's
    (found by hand: an H100 profile "resumed" under --gpu H200-141GB became an H200 profile, 0 points measured).
    The engine's limits (`max_batched_tokens`, `max_num_seqs`) are compared where the meta records them: they shape
    the steps a point times, and the planner reads them from the meta (found in QA: a profile measured at 8,192
    batched tokens resumed under --max-num-batched-tokens 2048 kept its 6 + 6 points and was relabelled 2048).

    A folder of an interrupted run (points, no meta.yaml yet) is checked against the identity.yaml its run wrote
    before its first point (profiles.format.IDENTITY_FILE; found in QA: an H100 run interrupted after 3 + 3 points,
    rerun with --gpu H200-141GB, reported 'prefill 0 measured, 3 resumed; decode 1 measured, 2 resumed' and wrote
    meta.yaml with gpu H200-141GB). One written before that file existed resumes as before, with a note."""
    from planner.io.files import read_yaml_mapping
    from profiles.format import META_FILE

    path = directory / META_FILE
    if not path.is_file():
        _check_resumes_the_same_run(directory, wanted)
        return
    # an older meta may not say the dtypes (bf16 then) or the engine's limits (nothing to compare)
    miss = _first_mismatch(read_yaml_mapping(path), wanted, {"weight_dtype": "bf16", "kv_dtype": "bf16"},
                           _ENGINE_LIMIT_FIELDS)
    if miss is not None:
        field, want, option, have = miss
        raise InputError(str(path), field, f"this run's {want!r} ({option}): --out holds a profile of another "
                         f"variant or engine configuration ({field} {have!r}), whose points this run would keep "
                         "as its own; give a new --out folder")


def _first_mismatch(recorded: Mapping[str, object], wanted: dict[str, tuple[object, str]],
                    defaults: Mapping[str, object], unrecorded_ok: Collection[str]) -> tuple[str, object, str, object] | None:
    """The first field of `wanted` (field -> (this run's value, its option)) whose `recorded` value (`defaults` where
    absent) differs, as (field, wanted, option, recorded); a field of `unrecorded_ok` that records nothing is not
    compared. None when every field agrees."""
    for field, (want, option) in wanted.items():
        have = recorded.get(field, defaults.get(field))
        if have is None and field in unrecorded_ok:
            continue
        if have != want:
            return field, want, option, have
    return None


def _check_resumes_the_same_run(directory: Path, wanted: dict[str, tuple[object, str]]) -> None:
    """An interrupted run's folder (points, no meta.yaml) against this run: every field of `wanted` as its
    identity.yaml records it, else exit 2 naming the folder's file, the field, the recorded and the asked value."""
    from planner.io.files import read_yaml_mapping
    from profiles.format import IDENTITY_FILE, interrupted_points

    counts = interrupted_points(directory)
    if counts is None:
        return  # a new folder, or one whose run measured nothing: nothing to keep, nothing to check
    held = f"{counts[0]} prefill and {counts[1]} decode points"
    ident = directory / IDENTITY_FILE
    if not ident.is_file():
        typer.echo(f"note: {directory} holds an interrupted profile run ({held}) written before profile runs recorded "
                   f"their identity ({IDENTITY_FILE}): its model, GPU, TP and engine configuration could not be checked "
                   "against this run's; its points are resumed as this run's", err=True)
        return
    miss = _first_mismatch(read_yaml_mapping(ident), wanted, {}, ())
    if miss is not None:
        field, want, option, have = miss
        raise InputError(str(ident), field, f"this run's {want!r} ({option}): --out holds an interrupted profile "
                         f"run ({held}) of another variant or engine configuration ({field} {have!r}), whose "
                         "points this run would keep as its own; rerun the command it was started with to "
                         "resume it, or give a new --out folder")


def _trace_arrivals(path: Path | None, model: str, max_len: int | None,
                    given: list[str]) -> tuple[tuple[float, int, int], ...]:
    """--rate-trace's requests of `model` as (t_s from its first, prompt tokens, output tokens), checked before any
    work: a readable trace, some request of the model, each within the server's max model length (vLLM refuses the
    others), and no other way of giving rates."""
    if path is None:
        return ()
    if given:
        raise InputError(None, "--rate-trace", f"give the load one way: --rate-trace or {', '.join(given)}")
    from planner.io.traces import read_trace, time_unit_note

    tr = read_trace(path, model, contexts={model: max_len} if max_len else None)
    if note := time_unit_note(tr):
        typer.echo(note, err=True)
    mine = tr[tr["model"] == model]
    if len(mine) < 2:
        raise InputError(str(path), "model", f"expected at least two requests of --model {model}; the trace has "
                         f"{len(mine)} (models in it: {', '.join(sorted(set(tr['model'])))})")
    t0 = float(mine["t_s"].min())
    return tuple((float(t) - t0, int(i), max(1, int(o))) for t, i, o in
                 mine[["t_s", "input_tokens", "output_tokens"]].itertuples(index=False))


def _rates_extrapolation_note(perf: VariantPerf, isls: Sequence[int], osl: int) -> str | None:
    """`planner profile rates` searches the laws far past any operating point (quietly); the ISLs whose prompts, or
    whose prompt + output context, lie beyond what the profile measured are said, as `planner solve` says of a plan
    (found by hand at stop 56, by a helper: ISL 4,096 on a profile measured to ISL 2,048 gave 7.26 req/s, no word)."""
    from planner.perf.laws import EXTRAPOLATION_SLACK

    far = [x for x in isls if (perf.max_isl_measured is not None and x > perf.max_isl_measured * EXTRAPOLATION_SLACK)
           or (perf.max_context_measured is not None and x + osl > perf.max_context_measured * EXTRAPOLATION_SLACK)]
    if not far:
        return None
    return (f"note: ISL {', '.join(f'{x:,}' for x in far)} beyond the measured range (prompts to "
            f"{perf.max_isl_measured or 0:,} tokens, decode contexts to {perf.max_context_measured or 0:,}): their "
            "saturation rates extrapolate the fitted laws; a profile measured that far (planner profile --prefill-isl, "
            "--decode-context) decides them")


def dtype_of(engine_flag: str | None) -> Dtype:
    """The precision contract's dtype ('bf16' or 'fp8') of a vLLM --quantization / --kv-cache-dtype value."""
    return "fp8" if (engine_flag or "").lower().startswith("fp8") else "bf16"


def variant_dir_name(tp: int, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> str:
    """tp<N>[-fp8][-kvfp8] (precision contract: -fp8 = FP8 weights, -kvfp8 = FP8 KV cache)."""
    return f"tp{tp}" + ("-fp8" if weight_dtype == "fp8" else "") + ("-kvfp8" if kv_dtype == "fp8" else "")


def vllm_profile_dir(root: Path, model: str, gpu: str, tp: int, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> Path:
    """Where a vLLM-measured profile lives: <root>/<model>/<gpu>/tp<N>[-fp8][-kvfp8]/vllm/."""
    return Path(root) / model / gpu / variant_dir_name(tp, weight_dtype, kv_dtype) / "vllm"


def register(app: typer.Typer) -> None:
    profile_app = command_group("Measure a variant's latency curves into a profile directory; `show` views one.",
                                no_args_is_help=False)

    @profile_app.callback(invoke_without_command=True)
    @_friendly
    def profile(
        ctx: typer.Context,
        backend: str = typer.Option("vllm", help="vllm (launch vllm serve or attach to --endpoint) or torch (reference decoder on this GPU)"),
        model: str | None = typer.Option(None, help="model name in profiles/models.yaml"),
        gpu: str | None = typer.Option(None, help="GPU type name in profiles/gpus.yaml (names the profile)"),
        tp: int = typer.Option(1, min=1, help="tensor-parallel size"),
        out: Path | None = typer.Option(None, help="profile directory (default: the bundled profiles/data/<model>/<gpu>/"
                                           "tp<N>[-fp8][-kvfp8]/vllm, the torch backend's tp<N>)"),
        endpoint: str | None = typer.Option(None, help="attach to a running vLLM server at this URL instead of launching one"),
        hf_model: str | None = typer.Option(None, help="what vllm serve loads (default: the catalog's hf_id)"),
        max_num_batched_tokens: int = typer.Option(8192, min=1, help="vllm --max-num-batched-tokens (V1 default 8192)"),
        max_num_seqs: int = typer.Option(256, min=1, help="vllm --max-num-seqs (default 256)"),
        gpu_memory_utilization: float = typer.Option(0.9, min=0.05, max=1.0, help="vllm --gpu-memory-utilization"),
        dummy_weights: bool = typer.Option(
            True, "--dummy-weights/--real-weights",
            help="--load-format dummy: profile the architecture without downloading weights (launch mode writes the model folder "
                 "itself from profiles/models.yaml + model_configs.yaml unless --hf-model is given)"),
        model_dir: Path | None = typer.Option(
            None, help="with --dummy-weights: where to write the weightless model folder (default: a temporary folder)"),
        quantization: str | None = typer.Option(None, help="vllm --quantization (fp8 = FP8 weights; profile dir suffix -fp8)"),
        kv_cache_dtype: str | None = typer.Option(None, help="vllm --kv-cache-dtype (fp8 = FP8 KV cache; profile dir suffix -kvfp8)"),
        max_model_len: int | None = typer.Option(None, min=2, help="vllm --max-model-len (default: the model's context length)"),
        skip_tokenizer_init: bool = typer.Option(False, help="vllm --skip-tokenizer-init (no tokenizer is written; prompts are token ids)"),
        time_budget_s: float | None = typer.Option(
            None, min=1.0, help="wall seconds for the prefill+decode sweeps; points not started in time are skipped"),
        deadline_unix_s: float | None = typer.Option(None, help="absolute end (Unix time) of the prefill+decode sweeps"),
        rate_deadline_unix_s: float | None = typer.Option(None, help="no rate run starts after this Unix time"),
        port: int = typer.Option(8000, help="port of the launched server"),
        server_cmd: str = typer.Option("vllm serve", help="command that starts the server (its model argument and flags are appended)"),
        extra_args: str = typer.Option("", help="more flags for the launched server, one string"),
        log_iterations: bool = typer.Option(
            False, help="launch mode: serve with vLLM's per-step log (--enable-logging-iteration-details) and write its "
                        "table beside the profile (iterations.csv.gz, for bench/step_composition.py); the logging slows "
                        "the API server, so this run's client-side latencies are not comparable with runs without it"),
        prefill_isl: str | None = typer.Option(None, help="comma list (default 128..16384)"),
        prefill_batch: str | None = typer.Option(None, help="comma list (default 1,2,4,8)"),
        decode_batch: str | None = typer.Option(None, help="comma list (default 1..256)"),
        decode_context: str | None = typer.Option(None, help="comma list (default 512..8192)"),
        decode_tokens: int = typer.Option(64, min=16, help="tokens generated per decode stream in the steady-state window"),
        repeats: int = typer.Option(3, min=1, help="timings per point (the median is kept)"),
        decode_repeats: int | None = typer.Option(None, min=1, help="timings per decode point (default: --repeats)"),
        prefill_budget_frac: float = typer.Option(0.3, min=0.05, max=1.0,
                                                  help="share of --time-budget-s / --deadline-unix-s the prefill sweep may use"),
        prefill_warmup: bool = typer.Option(True, "--prefill-warmup/--no-prefill-warmup",
                                            help="send each prefill point once, untimed, before timing it (kernels "
                                                 "compiled on first use stall the first run)"),
        prefill_method: PrefillMethod = typer.Option(PrefillMethod.engine, case_sensitive=False,
                                                     help="vllm: how a prefill point is timed: 'engine' (vLLM's own prefill-time "
                                                          "histogram) or 'blocker' (the first runs' client-side method); "
                                                          "profiles/backends/vllm.py says why"),
        max_point_kv_tokens: int | None = typer.Option(None, min=1, help="skip decode points holding more KV tokens than this"),
        ttft_cap_ms: float = typer.Option(30000.0, help="stop growing a prefill dimension past this latency"),
        itl_cap_ms: float = typer.Option(500.0, help="stop growing a decode dimension past this latency"),
        health_timeout_s: float | None = typer.Option(None, help="how long to wait for /health (launch: 900 s, attach: 30 s)"),
        kv_capacity: int | None = typer.Option(None, min=1, help="KV capacity in tokens, if /metrics does not say"),
        time_scale: float = typer.Option(1.0, min=1e-4, help="emulated servers only: wall seconds per emulated second"),
        rates: str | None = typer.Option(None, help="request-rate sweep (req/s, comma list) for goodput.csv"),
        rate_isl: int = typer.Option(1024, min=1, help="prompt length of the rate sweep's requests, tokens (without "
                                     "--rate-isls / --rates-by-isl)"),
        rate_osl: int = typer.Option(128, min=1, help="output length (max_tokens) of the rate sweep's requests, tokens "
                                     "(their mean with --rate-osl-scv)"),
        rate_requests: int = typer.Option(200, min=1, help="requests per rate (at least)"),
        rate_isls: str | None = typer.Option(None, help="rate sweep ISLs, comma list (default: --rate-isl); per-request rows -> load_sweep.csv"),
        rates_by_isl: str | None = typer.Option(None, help="rates per ISL, e.g. '1024=3,8,14;4096=2,4,6' (ISLs in this order)"),
        rate_shares: str | None = typer.Option(None, help="the rates as shares of the saturation rate the planner predicts "
                                               "for this variant before the run (`planner profile rates --model`), per "
                                               "--rate-isls, e.g. 0.35,0.6,0.8,0.95,1.05,1.2; not with --rates / "
                                               "--rates-by-isl"),
        rate_duration_s: float = typer.Option(0.0, min=0.0, help="if > 0: each rate sends max(rate-requests, rate x this) requests"),
        rate_seed: int = typer.Option(0, min=0, help="seed of the load sweep's Poisson arrivals: the i-th ISL's k-th "
                                      "rate draws this + 1000 i + k; a new seed draws samples independent of earlier "
                                      "sweeps'"),
        rate_settle_s: float = typer.Option(0.0, min=0.0, help="seconds of each rate's arrivals sent first and kept out of "
                                            "the sample (rows with settle = 1 in load_sweep.csv; goodput.csv counts the "
                                            "rest): the replica reaches its steady state before the measured requests"),
        rate_isl_scv: float = typer.Option(0.0, min=0.0, max=100.0,
                                           help="spread of the rate sweep's prompt lengths (squared CV; e.g. 0.66, the Azure "
                                                "conversation trace's): each prompt drawn from a log-normal of mean ISL clipped "
                                                "at the max model length (0: every prompt of the ISL)"),
        rate_osl_scv: float = typer.Option(0.0, min=0.0, max=100.0,
                                           help="spread of the rate sweep's output lengths (squared CV): each request's "
                                                "max_tokens drawn from a log-normal of mean --rate-osl, clipped where prompt "
                                                "and output fit the max model length (0: every output of --rate-osl)"),
        rate_trace: Path | None = typer.Option(None, "--rate-trace", help="replay this request trace (its own arrival "
                                               "times and lengths, the --model's requests; the formats of `planner "
                                               "workload from-trace`) instead of Poisson rates: per-request rows -> "
                                               "trace_replay.csv, for bench/vllm_trace_replay.py; not with --rates, "
                                               "--rates-by-isl or --rate-shares"),
        rate_warmup_s: float = typer.Option(5.0, min=0.0, help="seconds of arrivals at an ISL's highest rate sent first and "
                                            "not recorded (kernels compiled on first use stall the engine; 0: none)"),
        rate_warmup_ends: bool = typer.Option(True, "--rate-warmup-ends/--rate-warmup-highest",
                                              help="warm up at the ISL's lowest rate too, after the highest (a low rate's "
                                                   "step shapes compile kernels the highest rate's never did)"),
        engine_account: bool = typer.Option(True, "--engine-account/--no-engine-account",
                                            help="scrape /metrics before, at 2 Hz during and after each rate run: the "
                                                 "engine's own account of it in engine_load.csv (profiles/engine_load.py)"),
        saturation_ttft_ms: float | None = typer.Option(None, help="stop raising an ISL's rate once the median TTFT passes this"),
        slo_ttft_ms: float | None = typer.Option(None, help="goodput: TTFT bound"),
        slo_itl_ms: float | None = typer.Option(None, help="goodput: ITL bound"),
        device: str = typer.Option("cuda", help="torch backend: device"),
        check: bool = typer.Option(True, "--check/--no-check", help="torch backend: correctness check first"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bars of the sweeps on the terminal"),
    ) -> None:
        """Measure prefill and decode curves of one variant (resumable; see `planner profile show`)."""
        if ctx.invoked_subcommand is not None:
            return
        from planner.cli.console import stdout_console
        from planner.io.catalog import Catalog
        from planner.perf.profiledata import profile_dir

        if not model or not gpu:
            raise InputError(None, "--model" if not model else "--gpu",
                             "--model and --gpu are required (names from profiles/models.yaml and profiles/gpus.yaml)")
        from planner.perf.floor import floor_breaches, floor_reason
        from planner.perf.profiledata import load_profile
        from profiles.backends.launch_env import moe_dummy_env

        cat = Catalog.load()
        spec = cat.model(model, "--model")
        cat.gpu(gpu, "--gpu")
        # the bundled profile root, where the planner reads profiles (this module moved out of profiles/, so a
        # root relative to its own folder put them in planner/cli/data/, where nothing reads them; found in QA)
        from planner.perf.laws import DEFAULT_PROFILES_DIR
        if backend == "vllm":
            directory = out or vllm_profile_dir(DEFAULT_PROFILES_DIR, model, gpu, tp,
                                                dtype_of(quantization), dtype_of(kv_cache_dtype))
        else:
            directory = out or profile_dir(DEFAULT_PROFILES_DIR, model, gpu, tp)
        console = stdout_console()
        from profiles import format as pfmt

        if not 1 <= port <= MAX_PORT:  # found in QA at stop 58: 70000 was taken and handed to `vllm serve --port`
            raise InputError(None, "--port", f"expected a port within 1..{MAX_PORT}, got {port}")
        _check_positive_finite((("--health-timeout-s", health_timeout_s), ("--ttft-cap-ms", ttft_cap_ms),
                                ("--itl-cap-ms", itl_cap_ms), ("--time-budget-s", time_budget_s),
                                ("--saturation-ttft-ms", saturation_ttft_ms), ("--slo-ttft-ms", slo_ttft_ms),
                                ("--slo-itl-ms", slo_itl_ms), ("--deadline-unix-s", deadline_unix_s),
                                ("--rate-deadline-unix-s", rate_deadline_unix_s)))
        _check_finite((("--time-scale", time_scale), ("--rate-duration-s", rate_duration_s),
                       ("--rate-settle-s", rate_settle_s), ("--rate-warmup-s", rate_warmup_s)))
        pi = _ints(prefill_isl, pfmt.PREFILL_ISL, "--prefill-isl")
        pb = _ints(prefill_batch, pfmt.PREFILL_BATCH, "--prefill-batch")
        db = _ints(decode_batch, pfmt.DECODE_BATCH, "--decode-batch")
        dc = _ints(decode_context, pfmt.DECODE_CONTEXT, "--decode-context")
        if backend == "torch":
            from profiles.backends import torch_ref

            argv = ["--model", model, "--gpu", gpu, "--tp", str(tp), "--out", str(directory), "--device", device,
                    "--prefill-isl", ",".join(map(str, pi)), "--prefill-batch", ",".join(map(str, pb)),
                    "--decode-batch", ",".join(map(str, db)), "--decode-context", ",".join(map(str, dc)),
                    "--mem-fraction", str(gpu_memory_utilization), "--ttft-cap-ms", str(ttft_cap_ms), "--itl-cap-ms", str(itl_cap_ms)]
            if check:
                argv.append("--check")
            if kv_capacity:
                argv += ["--kv-capacity", str(kv_capacity)]
            try:
                code = torch_ref.main(argv)
            except ModuleNotFoundError as exc:
                raise InputError(None, "--backend", f"the torch backend needs PyTorch ({exc}); pip install torch") from None
            except SystemExit as exc:
                raise InputError(None, "--backend", str(exc)) from None
            if code == 0:
                typer.echo(f"note: the planner uses a torch-reference profile only where no vLLM profile is loaded; with the "
                           f"bundled ones it plans {model} on {gpu} from the roofline prior calibrated on them, which missed "
                           "vLLM less than the torch reference decoder where both were measured (bench/calibrate_prior.py "
                           "part D): `planner profile --backend vllm --dummy-weights` measures what the planner uses", err=True)
            raise typer.Exit(code)
        if backend != "vllm":
            raise InputError(None, "--backend", f"expected 'vllm' or 'torch', got {backend!r}")
        # before any work (a launch or the endpoint's health wait): what no run could fix
        from planner.io.files import check_writable
        from planner.io.validate import check_url
        from planner.perf.laws import structural_blocker_reason

        if endpoint is not None:
            check_url(endpoint, None, "--endpoint", "http://127.0.0.1:8000")
            if endpoint.rstrip("/").endswith("/v1"):  # the OpenAI base URL clients take (found by hand at stop 51: 404s)
                raise InputError(None, "--endpoint", f"the server's root URL, e.g. {endpoint.rstrip('/')[:-3]} (the "
                                 f"profiler reads /health, /v1/models and /metrics under it), not its OpenAI base; "
                                 f"got {endpoint!r}")
        check_writable(Path(directory) / pfmt.META_FILE, "--out")
        identity: dict[str, tuple[object, str]] = {
            "model": (model, "--model"), "gpu": (gpu, "--gpu"), "tp": (tp, "--tp"), "backend": ("vllm", "--backend"),
            "weight_dtype": (dtype_of(quantization), "--quantization"),
            "kv_dtype": (dtype_of(kv_cache_dtype), "--kv-cache-dtype"),
            "max_batched_tokens": (max_num_batched_tokens, "--max-num-batched-tokens"),
            "max_num_seqs": (max_num_seqs, "--max-num-seqs")}
        _check_resumes_the_same_variant(Path(directory), identity)
        reason = structural_blocker_reason(cat, model, gpu, tp, dtype_of(quantization), dtype_of(kv_cache_dtype))
        if reason is not None:
            raise InputError(None, "--tp", f"{model} on {gpu}: {reason}")
        sweeps_rates = bool(rates or rates_by_isl or rate_shares)  # the rate sweep runs only where rates are given
        if max_model_len is not None:
            _check_max_model_len(max_model_len, model, spec.max_context, pi,
                                 _rate_isls(rates_by_isl, rate_isls, rate_isl) if sweeps_rates else (), rate_osl)
        elif sweeps_rates and spec.max_context is not None:
            _check_rate_requests_fit(spec.max_context, model, _rate_isls(rates_by_isl, rate_isls, rate_isl), rate_osl,
                                     "--rates-by-isl" if rates_by_isl else "--rate-isls" if rate_isls else "--rate-isl")
        arrivals = _trace_arrivals(rate_trace, model, max_model_len or spec.max_context,
                                   given=[o for o, v in (("--rates", rates), ("--rates-by-isl", rates_by_isl),
                                                         ("--rate-shares", rate_shares)) if v])
        if rate_shares is not None:  # before any work: the rates the planner's laws put around the replica's capacity
            if rates or rates_by_isl:
                raise InputError(None, "--rate-shares", "give the rates one way: --rate-shares, --rates or --rates-by-isl")
            from planner.perf.laws import PerfModel, quiet_extrapolation

            vp = PerfModel.load(catalog=cat).get(model, gpu, tp, dtype_of(quantization), dtype_of(kv_cache_dtype))
            if vp is None:
                raise _cannot_run(console, f"{model} on {gpu} tp{tp}", cat, model, gpu, tp, dtype_of(quantization),
                                  dtype_of(kv_cache_dtype))
            shares = _shares(rate_shares, "--rate-shares")
            with quiet_extrapolation():
                sat_r = saturation_by_isl(vp, _rate_isls(None, rate_isls, rate_isl), rate_osl, osl_scv=rate_osl_scv,
                                          isl_scv=rate_isl_scv, isl_max=float(max_model_len) if max_model_len else None)
            rates_by_isl = rates_by_isl_text(rates_from_shares(sat_r, shares))
            console.print(f"rate sweep: --rates-by-isl {rates_by_isl} (shares of the saturation rate predicted from "
                          f"{vp.law_source or vp.source} laws)")
        import shlex
        import tempfile

        from profiles.backends.vllm import LaunchConfig, VllmRunConfig, run_profile
        from profiles.iterations import ITERATION_FLAG

        launch = None
        tmp_model_dir = None
        if log_iterations and endpoint is not None:
            raise InputError(None, "--log-iterations", "--log-iterations needs launch mode (the server's own flag); "
                                                     "with --endpoint serve with --enable-logging-iteration-details yourself")
        if endpoint is None:
            what = hf_model or spec.hf_id or model
            if dummy_weights and hf_model is None:
                from profiles.modeldir import load_serving_facts, write_model_dir

                facts = load_serving_facts(model)  # before any work: a model without facts is exit 2
                if model_dir is None:
                    tmp_model_dir = tempfile.TemporaryDirectory(prefix=f"pdp-{model}-")
                    model_dir = Path(tmp_model_dir.name)
                what = str(write_model_dir(spec, model_dir, facts, tokenizer=not skip_tokenizer_init))
                if max_model_len is None:
                    max_model_len = facts.max_position_embeddings
            launch = LaunchConfig(model=what, served_model_name=model, tp=tp,
                                  max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
                                  gpu_memory_utilization=gpu_memory_utilization, load_format_dummy=dummy_weights,
                                  max_model_len=max_model_len, quantization=quantization, kv_cache_dtype=kv_cache_dtype,
                                  skip_tokenizer_init=skip_tokenizer_init, port=port,
                                  extra_args=shlex.split(extra_args) + ([ITERATION_FLAG]
                                                                        if log_iterations else []),
                                  server_cmd=shlex.split(server_cmd),
                                  env=moe_dummy_env(spec.moe is not None, dummy_weights))
        cfg = VllmRunConfig(model=model, gpu=gpu, tp=tp, out=Path(directory), endpoint=endpoint, launch=launch,
                            prefill_isl=pi, prefill_batch=pb, decode_batch=db, decode_context=dc, decode_tokens=decode_tokens,
                            repeats=repeats, decode_repeats=decode_repeats, max_point_kv_tokens=max_point_kv_tokens,
                            prefill_method=prefill_method.value, prefill_budget_frac=prefill_budget_frac, prefill_warmup=prefill_warmup,
                            ttft_cap_ms=ttft_cap_ms, itl_cap_ms=itl_cap_ms, max_num_seqs=max_num_seqs,
                            max_batched_tokens=max_num_batched_tokens, health_timeout_s=health_timeout_s,
                            kv_capacity_override=kv_capacity, time_scale=time_scale, rates=_floats(rates, "--rates"),
                            rate_isl=rate_isl, rate_osl=rate_osl, rate_requests=rate_requests,
                            rate_isls=_rate_isls(rates_by_isl, rate_isls, rate_isl), rates_by_isl=_rates_by_isl(rates_by_isl),
                            rate_duration_s=rate_duration_s, rate_warmup_s=rate_warmup_s, rate_warmup_ends=rate_warmup_ends,
                            rate_isl_scv=rate_isl_scv, rate_osl_scv=rate_osl_scv, rate_seed=rate_seed, rate_settle_s=rate_settle_s,
                            rate_trace=arrivals,
                            engine_account=engine_account, saturation_ttft_ms=saturation_ttft_ms, time_budget_s=time_budget_s,
                            deadline_unix_s=deadline_unix_s, rate_deadline_unix_s=rate_deadline_unix_s,
                            weight_dtype=dtype_of(quantization), kv_dtype=dtype_of(kv_cache_dtype),
                            slo_ttft_ms=slo_ttft_ms, slo_itl_ms=slo_itl_ms, progress=progress,
                            other_models=_other_models_served_names(cat, model, hf_model))
        # whose points the folder holds, before the first of them: an interrupted run is resumed only as its own
        pfmt.write_identity(directory, {field: want for field, (want, _option) in identity.items()})
        try:
            summary = run_profile(cfg)
        finally:
            if tmp_model_dir is not None:
                tmp_model_dir.cleanup()
        p, d = summary.prefill, summary.decode
        assert p is not None and d is not None, "run_profile returns after both sweeps"
        from planner.cli.console import EXIT_INFEASIBLE
        from profiles.format import IDENTITY_FILE, META_FILE

        if (Path(directory) / META_FILE).is_file():  # complete: its meta.yaml says whose it is, as before
            (Path(directory) / IDENTITY_FILE).unlink(missing_ok=True)
        else:
            # nothing measured (plan h14, stop 45: the server came up after the run's deadlines): say so, not the
            # loader's "meta.yaml: file not found"
            reasons = list({**p.stop_reasons, **d.stop_reasons}.values())
            stops = "; ".join(f"{why} ({reasons.count(why)} points)" for why in dict.fromkeys(reasons)) or "no point ran"
            console.print(f"[red]no profile written to {directory}: no prefill and decode point was measured ({stops}); "
                          f"run.yaml there records the run. A launched server's start-up counts against --time-budget-s "
                          f"and --deadline-unix-s: give the run more time.[/]")
            raise typer.Exit(EXIT_INFEASIBLE)
        console.print(f"profile written to {directory}: KV capacity {summary.kv_capacity_tokens:,} tokens; "
                      f"prefill {len(p.measured)} measured, {len(p.resumed)} resumed, {len(p.dominated)} skipped; "
                      f"decode {len(d.measured)} measured, {len(d.resumed)} resumed, {len(d.dominated)} skipped; "
                      f"GPU busy {summary.gpu_seconds:.1f} s")
        for k, why in {**p.stop_reasons, **d.stop_reasons}.items():
            console.print(f"  stopped at {k}: {why}")
        written = load_profile(Path(directory))
        breaches = floor_breaches(written, cat)
        if breaches:  # rule V1: the planner will not use it
            console.print(f"[yellow]warning: {floor_reason(written, breaches)}")

    @profile_app.command("show")
    @_friendly
    def show(
        directory: Path = typer.Argument(..., help="profile directory (meta.yaml, prefill.csv, decode.csv)"),
        png: Path | None = typer.Option(None, help="where to save the plot (default "
                                           "out/<model>-<gpu>-tp<N>[-fp8][-kvfp8][-vllm]-fit.png, never inside the "
                                           "tracked profile folder)"),
        no_png: bool = typer.Option(False, "--no-png", help="save no plot (as `planner simulate --no-png`)"),
        own: bool = typer.Option(False, "--own", help="DIR's own profile (e.g. a torch-reference one) where DIR also "
                                 "holds a vllm/ one; by default the vllm/ one, as the planner and `planner profile "
                                 "rates DIR` use"),
    ) -> None:
        """Print the fitted laws and residuals of a profile, and save a PNG of points vs fitted curves (unless --no-png).
        Where DIR holds both its own profile and a vllm/ one, the vllm/ one (the planner's) unless --own."""
        from planner.cli.console import stdout_console
        from planner.io.files import check_writable
        from planner.io.schema import precision_suffix
        from planner.io.validate import check_laws_identifiable
        from profiles.show import fit_profile_dir, graph_advice, render, save_png

        png = figure_path(png, no_png, None)
        if png is not None:
            check_writable(png, "--png")
        fit = fit_profile_dir(directory, own=own)

        console = stdout_console()
        if Path(fit.profile.path) != directory:  # say which profile DIR stood for (found in QA)
            console.print(f"showing {fit.profile.path} ({fit.law_source}), the vllm/ profile of {directory}", highlight=False)
        render(fit, console)
        m = fit.profile.meta
        advice = graph_advice(fit.profile)
        if advice:
            console.print(f"note: {advice}")
        try:  # a grid too small to tell the laws' terms apart fits them exactly: say so (planner profile rates refuses it)
            check_laws_identifiable(fit.profile.path, fit.profile.prefill, fit.profile.decode)
        except InputError as e:
            console.print(f"[yellow]warning: the laws above are not determined by these points: {e}[/]")
        # named for the whole variant and its engine, as its folder is (found by hand: tp1, tp1/vllm, tp1-fp8 and
        # tp1-kvfp8 of one model and GPU all wrote out/<model>-<gpu>-tp1-fit.png, each over the one before)
        engine = "-vllm" if fit.law_source == "measured-vllm" else ""
        name = f"{m.model}-{m.gpu}-tp{m.tp}{precision_suffix(m.weight_dtype, m.kv_dtype)}{engine}-fit.png"
        if not no_png:
            path = save_png(fit, png or Path("out") / name)
            console.print(f"plot saved to {path}")

    @profile_app.command("rates")
    @_friendly
    def rates(
        directory: Path | None = typer.Argument(None, help="profile directory (meta.yaml, prefill.csv, decode.csv); "
                                                "or --model and --gpu: the laws the planner uses for that variant"),
        model: str | None = typer.Option(None, help="catalog model (instead of a profile directory)"),
        gpu: str | None = typer.Option(None, help="catalog GPU type (with --model)"),
        tp: int = typer.Option(1, min=1, help="tensor-parallel size (with --model)"),
        weight_dtype: str = typer.Option("bf16", help="bf16 or fp8 (with --model)"),
        kv_dtype: str = typer.Option("bf16", help="bf16 or fp8 (with --model)"),
        isl: str = typer.Option(RATES_ISL_DEFAULT, help="comma list of prompt lengths, tokens (the default's beyond the "
                                "model's context are left out)"),
        osl: int = typer.Option(128, min=1, help="output length, tokens"),
        shares: str = typer.Option(",".join(f"{x:g}" for x in RATE_SHARES),
                                   help="comma list of shares of the saturation rate to offer"),
        percentile: float = typer.Option(RATE_PERCENTILE, min=50.0, max=99.99,
                                         help="latency percentile the saturation is judged at (the benches' p90)"),
        own_profile: bool = typer.Option(False, "--own", help="DIR's own profile where DIR also holds a vllm/ one (by default "
                                 "the vllm/ one, as the planner and `planner profile show DIR` use)"),
    ) -> None:
        """The request rate that saturates one replica with this profile's laws (the capacity model's own,
        planner/planning/saturation.py), per prompt length, and a load sweep's rates as shares of it: the
        `--rates-by-isl` value that makes `planner profile` straddle the replica's capacity (the shares default to the
        design of the committed held-out sweeps, 0.35-1.2; a steady-state check of the saturation rate wants its
        top share at 1.15 or more, so that the served rate falls below 0.9 x the offered one). With --model and --gpu
        instead of a directory: the laws the planner uses for that variant (a bundled profile, or the roofline prior
        before any is measured), so a first load sweep can be planned before profiling; exit 3 where it cannot run."""
        from planner.cli.console import stdout_console
        from planner.io.catalog import Catalog
        from planner.io.schema import DTYPES
        from planner.io.validate import check_laws_identifiable
        from planner.perf.laws import PerfModel, fit_profile, quiet_extrapolation
        from planner.perf.profiledata import load_profile
        from profiles.format import META_FILE, VLLM_SUBDIR

        if (directory is None) == (model is None) or (model is None) != (gpu is None):
            raise InputError(None, "DIRECTORY", "expected a profile directory, or --model and --gpu (not both)")
        for name, value in (("--weight-dtype", weight_dtype), ("--kv-dtype", kv_dtype)):
            if value not in DTYPES:
                raise InputError(None, name, f"expected one of {', '.join(DTYPES)}, got {value!r}")

        isls = _ints(isl, (), "--isl")
        if not isls or any(x <= 0 for x in isls):
            raise InputError(None, "--isl", f"expected a comma-separated list of positive token counts, got {isl!r}")
        share_list = _shares(shares, "--shares")
        console = stdout_console()
        with quiet_extrapolation():
            if directory is not None:
                # the profile the planner uses: DIR's vllm/ one where DIR holds both (profiles/show.py says why),
                # unless --own; `planner profile show DIR` picks the same one
                vllm_dir = directory / VLLM_SUBDIR
                d = vllm_dir if (vllm_dir / META_FILE).is_file() and not (own_profile and (directory / META_FILE).is_file()) else directory
                prof = load_profile(d)
                # --tp and the dtypes pick a variant by name; a directory's variant is its own, so one that asks for
                # another is refused, not answered for the directory's (found by hand: `rates DIR --tp 2` gave tp1's)
                for name, given, default, own in (("--tp", tp, 1, prof.meta.tp),
                                                  ("--weight-dtype", weight_dtype, "bf16", prof.meta.weight_dtype),
                                                  ("--kv-dtype", kv_dtype, "bf16", prof.meta.kv_dtype)):
                    if given != default and given != own:
                        raise InputError(None, name, f"with a profile directory, that directory's own ({d} is {name[2:]} {own}); "
                                         f"got {given}: give the directory of that variant, or --model and --gpu")
                check_laws_identifiable(d, prof.prefill, prof.decode)  # a one-point grid: exit 2, not a traceback
                perf, _, _ = fit_profile(prof, Catalog.load())
                source = f"laws fitted on {d}"
            else:
                assert model is not None and gpu is not None  # checked above
                catalog = Catalog.load()
                catalog.model(model, "--model")  # an unknown name is an InputError naming the option and the known ones
                catalog.gpu(gpu, "--gpu")
                vp = PerfModel.load(catalog=catalog).get(model, gpu, tp, weight_dtype, kv_dtype)  # type: ignore[arg-type]
                if vp is None:
                    raise _cannot_run(console, f"{model} on {gpu} tp{tp}", catalog, model, gpu, tp, weight_dtype, kv_dtype)  # type: ignore[arg-type]
                perf = vp
                source = f"laws from {vp.law_source or vp.source} (the planner's for this variant)"
            ctx = Catalog.load().contexts([perf.model]).get(perf.model)
            over = [x for x in isls if ctx is not None and x + osl > ctx]
            if over and isl == RATES_ISL_DEFAULT and len(over) < len(isls):  # the default grid: keep what fits
                console.print(f"note: ISL {', '.join(f'{x:,}' for x in over)} left out: beyond {perf.model}'s context "
                              f"of {ctx:,} tokens with --osl {osl:,}")
                isls = tuple(x for x in isls if x not in over)
            elif over:  # a replica serves no such request: no saturation rate to give
                raise InputError(None, "--isl", f"prompts within {perf.model}'s context of {ctx:,} tokens with the "
                                 f"--osl {osl:,}; ISL {over[0]:,} + {osl:,} exceeds it")
            sat = saturation_by_isl(perf, isls, osl, percentile)
        by_isl = rates_from_shares(sat, share_list)
        t = Table(title=f"{perf.model} on {perf.gpu} tp{perf.tp}: one mixed replica, OSL {osl}, Poisson arrivals, "
                        f"saturation at p{percentile:g} by the capacity model")
        for c in ("ISL", "saturation, req/s", "rates, req/s"):
            t.add_column(c, justify="right")
        for x in isls:
            t.add_row(str(x), f"{sat[x]:.2f}", ", ".join(f"{r:g}" for r in by_isl[x]))
        console.print(t)
        console.print(source)
        if note := _rates_extrapolation_note(perf, isls, osl):
            console.print(note, highlight=False)
        import shlex  # quoted for the shell: the ISLs' ';' would end the pasted command there (found in QA)

        console.print("--rates-by-isl " + shlex.quote(rates_by_isl_text(by_isl)), highlight=False)

    @profile_app.command("predict")
    @_friendly
    def predict(
        model: str = typer.Option(..., help="catalog model"),
        gpu: str = typer.Option(..., help="catalog GPU type"),
        tp: int = typer.Option(1, min=1, help="tensor-parallel size"),
        weight_dtype: str = typer.Option("bf16", help="bf16 or fp8 (vLLM --quantization fp8)"),
        kv_dtype: str = typer.Option("bf16", help="bf16 or fp8 (vLLM --kv-cache-dtype fp8)"),
        prefill_isl: str | None = typer.Option(None, help="comma list (default: the profiler's prefill grid)"),
        decode_batch: str | None = typer.Option(None, help="comma list (default: the profiler's decode batches)"),
        decode_context: str | None = typer.Option(None, help="comma list (default: the profiler's decode contexts)"),
        profiles: Path | None = typer.Option(None, help="profile root (default: the bundled profiles and your catalog's)"),
    ) -> None:
        """What the planner assumes for one variant before (or instead of) measuring it: where its laws come from (a
        measured profile, or the roofline prior calibrated on the measured ones), one prompt's TTFT per ISL (the
        per-request overhead included), the decode step per batch and context, and the KV capacity. Exit 3 where the
        variant cannot run (weights beyond the GPUs' memory, or a TP size the model or node does not allow)."""
        from planner.cli.console import stdout_console
        from planner.io.catalog import Catalog
        from planner.io.schema import DTYPES
        from planner.io.validate import check_profiles_found
        from planner.perf.kernel_tables import default_tiles_advice, moe_kernel_tuning
        from planner.perf.laws import PerfModel, quiet_extrapolation
        from profiles import format as pfmt

        for name, value in (("--weight-dtype", weight_dtype), ("--kv-dtype", kv_dtype)):
            if value not in DTYPES:
                raise InputError(None, name, f"expected one of {', '.join(DTYPES)}, got {value!r}")
        isls = _ints(prefill_isl, pfmt.PREFILL_ISL, "--prefill-isl")
        batches = _ints(decode_batch, pfmt.DECODE_BATCH, "--decode-batch")
        contexts = _ints(decode_context, pfmt.DECODE_CONTEXT, "--decode-context")
        catalog = Catalog.load()
        catalog.model(model, "--model")  # an unknown name is an InputError naming the option and the known ones
        catalog.gpu(gpu, "--gpu")
        perf = PerfModel.load(catalog=catalog, profiles_dir=profiles)
        check_profiles_found(len(perf.measured), profiles)  # an empty root is exit 2, as solve says it, not the prior
        vp = perf.get(model, gpu, tp, weight_dtype, kv_dtype)  # type: ignore[arg-type]
        console = stdout_console()
        variant = f"{model} on {gpu} tp{tp}, weights {weight_dtype}, KV {kv_dtype}"
        if vp is None:
            raise _cannot_run(console, variant, catalog, model, gpu, tp, weight_dtype, kv_dtype)  # type: ignore[arg-type]
        others = perf.alternatives.get((model, gpu, tp, weight_dtype, kv_dtype), [])
        source = vp.law_source or vp.source
        console.print(f"{variant}: laws from {source}"
                      + (f" (profiles of it: {', '.join(others)}; the prior is used where none is vLLM's or the engine's)"
                         if source == "prior" and others else "")
                      + f"; KV capacity {vp.kv_capacity_tokens:,} tokens; TTFT overhead {vp.ttft_overhead_ms:.1f} ms")
        bad = perf.unphysical.get((model, gpu, tp, weight_dtype, kv_dtype))
        if bad:
            console.print(f"[yellow]not used: {bad}")
        tiles = moe_kernel_tuning(catalog.model(model), catalog.gpu(gpu), tp, weight_dtype)
        if tiles.tuned is False and tiles.table is not None:  # rule V3 (planner.perf.kernel_tables)
            console.print(f"[yellow]note: {default_tiles_advice([tiles.table])}" if source == "prior" else
                          f"note: {tiles.note}; the measured laws include it")
        # a point the replica cannot serve gets no number (the laws would extrapolate one): a prompt beyond the model's
        # context or the KV cache, a batch whose sequences' KV (batch x context tokens) exceeds the cache
        max_context = catalog.model(model).max_context or math.inf
        kv_tokens = vp.kv_capacity_tokens
        with quiet_extrapolation():
            pre = Table(title="prefill TTFT, ms")
            for c in ("isl", "TTFT ms"):
                pre.add_column(c, justify="right")
            for isl in isls:
                pre.add_row(str(isl), "-" if isl > min(max_context, kv_tokens)
                            else f"{vp.ttft_overhead_ms + vp.prefill_ms(float(isl), 1.0):.1f}")
            dec = Table(title="decode step, ms: batch x context")
            dec.add_column("batch", justify="right")
            for ctx in contexts:
                dec.add_column(str(ctx), justify="right")
            for b in batches:
                dec.add_row(str(b), *("-" if ctx > max_context or b * ctx > kv_tokens
                                      else f"{vp.decode_step_ms(float(b), float(ctx)):.2f}" for ctx in contexts))
        console.print(pre)
        console.print(dec)
        if any(isl > min(max_context, kv_tokens) for isl in isls) or any(
                ctx > max_context or b * ctx > kv_tokens for b in batches for ctx in contexts):
            console.print("-: the replica cannot serve it: "
                          + (f"beyond the model's {max_context:,}-token context or " if max_context < math.inf else "")
                          + f"the {kv_tokens:,} tokens of its KV cache (a batch holds batch x context tokens)")
        if source == "prior":
            console.print(f"note: predicted, not measured ({_prior_accuracy_note(perf, catalog, model, gpu)}): "
                          "`planner profile --backend vllm --dummy-weights` measures it")

    app.add_typer(profile_app, name="profile")


def _prior_accuracy_note(perf: PerfModel, catalog: Catalog, model: str, gpu: str) -> str:
    """How far the roofline prior missed real vLLM where it had to guess as it does here: models held out of its
    calibration on cards it was calibrated on (planner.perf.heldout.PRIOR_HELD_OUT, dense or MoE), or, for a GPU type
    with no profile of any model, vLLM profiles whose card and model were both held out (PRIOR_CARD_AND_MODEL_UNSEEN)."""
    from planner.perf.heldout import PRIOR_CARD_AND_MODEL_UNSEEN, PRIOR_HELD_OUT, PRIOR_HELD_OUT_MOE_GRAPHS

    if gpu not in perf.profiled_gpus:
        pre, dec = PRIOR_CARD_AND_MODEL_UNSEEN
        return (f"{gpu} has no profile of any model: on vLLM profiles whose card and model were both held out of its "
                f"calibration the prior missed prefill by {pre:.0%} and decode by {dec:.0%} at the median, "
                "bench/calibrate_prior.py part C2'")
    moe = catalog.model(model).moe is not None
    n, pre, dec = PRIOR_HELD_OUT.of_kind(moe)
    return (f"on {n} {'MoE' if moe else 'dense'} model{'' if n == 1 else 's'} held out of its calibration the prior missed "
            f"prefill by {pre:.0%} and decode by {dec:.0%} at the median, bench/heldout_model.py --set"
            + (f"; served with CUDA graphs to 4,096 tokens the MoE's prefill by {PRIOR_HELD_OUT_MOE_GRAPHS[0]:.0%}"
               if moe else ""))
