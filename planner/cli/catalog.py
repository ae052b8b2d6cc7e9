"""`planner catalog`: the models and GPU types the planner knows, and a user's own catalog folder.

`planner catalog import-hf CONFIG.json --name NAME --into DIR` writes a model nobody catalogued into DIR
(models.yaml + model_configs.yaml, the bundled files' formats; planner/io/hfconfig.py says what is
carried); `planner --catalog DIR <command>` (or ``PLANNER_CATALOG=DIR``) then plans, simulates and
profiles it like a bundled one. `planner catalog list` shows what is known and where it comes from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml
from rich.table import Table

from planner.cli.console import command_group, friendly_errors, stdout_console
from planner.io.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from planner.io.catalog import Catalog
    from planner.io.schema import Dtype, ModelSpec
    from planner.perf.laws import PerfModel, VariantKey

catalog_app = command_group("Catalogs: the models and GPU types known; add your own.")


def _read_mapping(p: Path) -> dict[str, object]:
    """An existing catalog file of the folder as a mapping ({} when absent)."""
    from planner.io.files import read_yaml_mapping

    return read_yaml_mapping(p) if p.exists() else {}


def _check_folder(models_file: Path, facts_file: Path, gpus_file: Path, replaced: str) -> None:
    """Every entry already in the catalog folder, but `replaced`'s, validated as its use reads it (models.yaml into
    ModelSpec, model_configs.yaml as serving facts, gpus.yaml into GpuType): an InputError naming the file and the
    field, before anything is written (found in QA at stop 58: an import into a folder holding an invalid entry wrote,
    then every command with --catalog failed on the old entry)."""
    from planner.io.catalog import _load_mapping
    from planner.io.files import parse_model
    from planner.io.schema import GpuType, ModelSpec
    from profiles.modeldir import load_serving_facts

    for key, entry in _read_mapping(models_file).items():
        if key == replaced:
            continue
        if not isinstance(entry, dict):
            raise InputError(str(models_file), key, f"expected a mapping of ModelSpec fields, got {type(entry).__name__}")
        parse_model(ModelSpec, {**entry, "name": key}, str(models_file), prefix=key)
    for key in _read_mapping(facts_file):
        if key != replaced:
            load_serving_facts(key, facts_file)
    if gpus_file.exists():
        _load_mapping(GpuType, gpus_file)


def _with_entry(path: Path, header: str, name: str, entry: object) -> str:
    """The text of catalog file `path` with the top-level entry `name` added or replaced, every other line kept as it
    is (found in QA at stop 58: an import re-dumped the whole file through yaml.safe_dump, which drops the comments of
    every other entry). The entry's block is its key line to the next line at column 0 that is not a comment; where the
    text so edited does not read back as the mapping wanted (a flow-style or otherwise unusual file), the whole mapping
    is written anew (its comments lost)."""
    block = yaml.safe_dump({name: entry}, sort_keys=False)
    if not path.exists():
        return header + block
    text = path.read_text()
    old = _read_mapping(path)
    want = {**old, name: entry}
    lines = text.splitlines(keepends=True)
    keys = {f"{name}:", f"'{name}':", f'"{name}":'}
    start = next((i for i, ln in enumerate(lines) if any(ln.startswith(k) for k in keys)), None)
    if start is None:
        new = text + ("" if not text or text.endswith("\n") else "\n") + block
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j][:1] not in ("", " ", "\t", "#", "\n")), len(lines))
        new = "".join(lines[:start]) + block + "".join(lines[end:])
    try:
        if yaml.safe_load(new) == want:
            return new
    except yaml.YAMLError:
        pass
    return header + yaml.safe_dump(want, sort_keys=False)


# Kubernetes' label value syntax (validation.IsValidLabelValue), lower case: a catalog name is one.
_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")


def weights_gib(spec: ModelSpec) -> str:
    """The model's weights in GiB as the planner sizes a replica's memory (ModelSpec.weight_bytes) at bf16 and, as every
    entry may be served so where a fleet's limits.allowed_dtypes allows it, at fp8 (ModelSpec.with_precision: linear
    layers at 1 byte, embeddings and lm_head at bf16): what a GPU's memory must hold before any KV cache (found in QA:
    import-hf printed parameters, KV per token and context, not the weights)."""
    from planner.perf.prior import GIB

    return (f"{spec.weight_bytes / GIB:.2f} GiB at bf16, "
            f"{spec.with_precision('fp8', 'bf16').weight_bytes / GIB:.2f} GiB at fp8")


def _user_names(file: str) -> set[str]:
    """The names the --catalog folder's `file` (models.yaml or gpus.yaml) defines: shown as 'catalog folder'."""
    from planner.io.catalog import user_catalog_file

    return set(_read_mapping(p)) if (p := user_catalog_file(file)) else set()


def _resolve(cat: Catalog, name: str) -> tuple[str | None, str | None]:
    """(model, GPU type) that `name` names, either None where it names none: the exact name, else the one equal to it
    but for case. Neither: an InputError with the closest names and the known ones (as an unknown --model or --gpu)."""
    from planner.io.catalog import _did_you_mean

    def find(known: Iterable[str]) -> str | None:
        known = list(known)
        return name if name in known else next((k for k in known if k.lower() == name.lower()), None)

    model, gpu = find(cat.models), find(cat.gpus)
    if model is None and gpu is None:
        raise InputError(None, "NAME", f"unknown model or GPU type '{name}'{_did_you_mean(name, [*cat.models, *cat.gpus])}; "
                         f"models ({cat.models_path}): {', '.join(sorted(cat.models))}; GPU types ({cat.gpus_path}): "
                         f"{', '.join(sorted(cat.gpus))}; add one with `planner catalog import-hf` and `planner --catalog DIR`")
    return model, gpu


PRECISIONS: tuple[tuple[Dtype, Dtype], ...] = (("bf16", "bf16"), ("fp8", "bf16"), ("bf16", "fp8"), ("fp8", "fp8"))
"""(weights, KV cache) of every variant a fleet's limits.allowed_dtypes may allow, bf16/bf16 first."""
PRECISION_NAMES = {("bf16", "bf16"): "bf16", ("fp8", "bf16"): "fp8 weights", ("bf16", "fp8"): "fp8 KV cache",
                   ("fp8", "fp8"): "fp8 weights + KV"}


def law_cell(pm: PerfModel, key: VariantKey) -> str:
    """Where the planner takes the laws of variant `key` (model, gpu, tp, weight dtype, KV dtype) from, as PerfModel.get
    decides it: the preferred profile's law_source where it is fitted (PerfModel.measured), else 'prior' where the
    roofline prior can run it (planner.perf.laws.run_blocker), else 'cannot run (node/heads/memory)'. A profile found
    but not used (a torch-only variant under TORCH_ONLY_LAWS = 'prior', one below the roofline floor) is named."""
    from planner.perf.laws import model_of, run_blocker

    if key in pm.measured:
        used = pm.measured[key].law_source or "measured"
        unused = [s for s in pm.alternatives.get(key, []) if s != used]
        return used + (f" (also {', '.join(unused)})" if unused else "")
    model, gpu, tp, w, kv = key
    blocker = run_blocker(model_of(pm.catalog, model, w, kv), pm.catalog.gpu(gpu), tp)
    if blocker is not None:
        return f"cannot run ({blocker})"
    if key in pm.unphysical:
        return "prior (its profile is below the roofline floor)"
    found = pm.alternatives.get(key)
    return f"prior ({', '.join(found)} profile not used: TORCH_ONLY_LAWS)" if found else "prior"


def _show_model(cat: Catalog, pm: PerfModel, name: str, from_folder: bool) -> None:
    """`catalog show` of a model: its architecture, the sizes the planner derives from it (ModelSpec, as `catalog list`
    and import-hf print them) and where each (GPU type, TP, precision) variant's laws come from (law_cell)."""
    from planner.io.schema import FleetLimits

    s = cat.models[name]
    con = stdout_console()
    con.print(f"[bold]{name}[/] ({'catalog folder' if from_folder else 'bundled'}"
              + (f", {s.hf_id}" if s.hf_id else "") + ")", highlight=False)
    ffn = f"FFN {s.intermediate} ({'gated, 3' if s.gated_ffn else 'plain, 2'} matrices)"
    moe = (f"; MoE {s.moe.experts} experts of {s.moe.expert_intermediate}, top-{s.moe.experts_per_token}"
           + (f", {s.moe.shared_experts} shared" if s.moe.shared_experts else "") if s.moe else "")
    con.print(f"  architecture: {s.layers} layers, hidden {s.hidden}, {s.heads} heads / {s.kv_heads} KV heads of "
              f"head_dim {s.head_dim}, {ffn}, vocab {s.vocab}{', tied embeddings' if s.tied_embeddings else ''}{moe}",
              highlight=False)
    kv8 = s.with_precision("bf16", "fp8").kv_bytes_per_token
    con.print(f"  parameters: {s.params / 1e9:.2f} B ({s.active_params / 1e9:.2f} B active)", highlight=False)
    con.print(f"  KV cache per token: {s.kv_bytes_per_token:,} B ({s.kv_bytes_per_token / 1024:.0f} KiB) at bf16, "
              f"{kv8:,} B ({kv8 / 1024:.0f} KiB) at fp8", highlight=False)
    con.print(f"  weights: {weights_gib(s)}", highlight=False)
    con.print(f"  context: {f'{s.max_context:,} tokens' if s.max_context else 'unchecked (no max_context)'}", highlight=False)
    # the TP sizes a fleet allows by default, with any TP size a profile of the model measured
    tps = sorted(set(FleetLimits().allowed_tp) | {k[2] for k in (*pm.alternatives, *pm.unphysical) if k[0] == name})
    t = Table(title=f"Laws of {name} (the planner's: a measured profile, else the roofline prior)")
    for col in ("GPU", "TP", *(PRECISION_NAMES[p] for p in PRECISIONS)):
        t.add_column(col)
    for g in sorted(cat.gpus):
        rows: list[tuple[list[int], list[str]]] = []  # TP sizes whose cells agree share a row
        for tp in tps:
            cells = [law_cell(pm, (name, g, tp, w, kv)) for w, kv in PRECISIONS]
            if rows and rows[-1][1] == cells:
                rows[-1][0].append(tp)
            else:
                rows.append(([tp], cells))
        for sizes, cells in rows:
            t.add_row(g, ", ".join(map(str, sizes)), *cells)
    con.print(t)
    con.print("  precisions: a fleet's limits.allowed_dtypes (vLLM --quantization fp8, --kv-cache-dtype fp8); measured-vllm / "
              "measured-torch / splitwise: fitted on that profile; prior: the calibrated roofline prior; "
              "cannot run: TP beyond a node, not dividing the heads, or no memory left "
              "for a KV cache (planner.perf.laws.run_blocker)", highlight=False)


def _show_gpu(cat: Catalog, pm: PerfModel, name: str, from_folder: bool) -> None:
    """`catalog show` of a GPU type: its catalog entry and the models profiled on it, with where each variant's laws
    come from (law_cell)."""
    g = cat.gpus[name]
    con = stdout_console()
    con.print(f"[bold]{name}[/] ({g.vendor}, {'catalog folder' if from_folder else 'bundled'}"
              + (f", driver name {g.driver_name}" if g.driver_name else "") + ")", highlight=False)
    con.print(f"  memory: {g.memory_gib:g} GiB, bandwidth {g.hbm_tb_s:g} TB/s", highlight=False)
    con.print(f"  peak dense TFLOP/s: {g.bf16_tflops:g} bf16, " + (f"{g.fp8_tflops:g} fp8" if g.fp8_tflops else "fp8 not stated"),
              highlight=False)
    con.print(f"  links: {g.intra_link_gb_s:g} GB/s GPU-GPU within a node of {g.gpus_per_node}, {g.kv_link_gb_s:g} GB/s "
              "per GPU for KV transfer", highlight=False)
    con.print(f"  price: ${g.price_per_hour:.2f} per GPU-hour (a fleet's gpus.{name}.price_per_hour overrides it); "
              f"power: {f'{g.power_w:g} W' if g.power_w else 'not stated'}", highlight=False)
    keys = sorted({k for k in (*pm.alternatives, *pm.unphysical) if k[1] == name})
    if not keys:
        con.print("  profiles: none; every model is planned on it from the calibrated roofline prior",
                  highlight=False)
        return
    t = Table(title=f"Models profiled on {name}")
    for col in ("model", "TP", "weights", "KV cache", "laws"):
        t.add_column(col, justify="right" if col == "TP" else "left")
    for key in keys:
        t.add_row(key[0], str(key[2]), key[3], key[4], law_cell(pm, key))
    con.print(t)
    con.print("  every other model, TP size and precision on it is planned from the roofline prior "
              "(`planner catalog show MODEL` lists a model's)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `catalog` group (import-hf, list, show) to the root app."""
    app.add_typer(catalog_app, name="catalog")

    @catalog_app.command("import-hf")
    @friendly_errors
    def import_hf(
        config: Path = typer.Argument(..., help="the model's Hugging Face config.json"),
        name: str = typer.Option(..., "--name", help="catalog name of the model (the workload's models.<name>), lower case"),
        into: Path = typer.Option(..., "--into", help="catalog folder to add it to (created; use with planner --catalog DIR)"),
        hf_id: str | None = typer.Option(None, "--hf-id", help="Hugging Face id, for the record (default: the config's _name_or_path)"),
        force: bool = typer.Option(False, "--force", help="replace an entry of that name already in the folder"),
    ) -> None:
        """Add a model to a catalog folder from its config.json: sizes (models.yaml) and serving facts
        (model_configs.yaml, for weightless profiling)."""
        from planner.io.catalog import DEFAULT_MODELS_PATH, Catalog
        from planner.io.files import check_writable, write_atomic
        from planner.io.hfconfig import from_hf_config

        # a Kubernetes label value in lower case (at most 63 of [a-z0-9._-], alphanumeric at both ends): the name is part
        # of pool ids (model/role/gpu/tpN), of the controller's label values and of comma-list options (found in QA at
        # stop 58: 'a:b', 'a,b', 'modèle', '-x' and an 80-character name were imported)
        if not _NAME.fullmatch(name):
            raise InputError(None, "--name", "a lower-case name of at most 63 letters, digits, '.', '_' or '-', a letter "
                             f"or digit at both ends (it is part of pool ids and Kubernetes label values); got {name!r}")
        try:
            cfg = json.loads(config.read_text())
        except OSError as exc:
            raise InputError(str(config), None, f"expected a readable config.json ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise InputError(str(config), None, f"expected JSON ({exc})") from None
        except UnicodeDecodeError as exc:  # found in QA: a UTF-16 or binary file was a UnicodeDecodeError traceback
            raise InputError(str(config), None, f"expected UTF-8 JSON, as config.json is written ({exc.reason} at byte "
                             f"{exc.start})") from None
        imported = from_hf_config(cfg, name, str(config), hf_id)
        if into.exists() and not into.is_dir():
            raise InputError(str(into), "--into", "exists and is not a folder; expected a catalog folder")
        if into.resolve() == DEFAULT_MODELS_PATH.parent.resolve():  # found in QA: --into profiles rewrote the bundled
            # models.yaml and model_configs.yaml through yaml.safe_dump, dropping the sources their comments give
            raise InputError(str(into), "--into", "is the bundled catalog folder, whose files cite a source for every "
                             "number; expected a folder of your own (used with planner --catalog DIR)")
        models_file, facts_file = into / "models.yaml", into / "model_configs.yaml"
        for f in (models_file, facts_file):
            check_writable(f, "--into")  # before any work: a folder that cannot be created or written
        models, facts = _read_mapping(models_file), _read_mapping(facts_file)
        if (name in models or name in facts) and not force:
            raise InputError(str(models_file if name in models else facts_file), name,
                             "already holds this model; pass --force to replace it, or another --name")
        _check_folder(models_file, facts_file, into / "gpus.yaml", name)
        # every size written out, but gated_ffn only where false (a plain MLP): the bundled models.yaml's form
        entry = imported.spec.model_dump(exclude={"name"} | ({"gated_ffn"} if imported.spec.gated_ffn else set()),
                                         exclude_none=True, exclude_defaults=False)
        header = (f"# Catalog folder written by `planner catalog import-hf` (use: planner --catalog {into} ...).\n"
                  "# Formats: the bundled profiles/models.yaml and profiles/model_configs.yaml.\n")
        models_text = _with_entry(models_file, header, name, entry)
        facts_text = _with_entry(facts_file, header, name, imported.facts)
        into.mkdir(parents=True, exist_ok=True)
        write_atomic(models_file, models_text)
        write_atomic(facts_file, facts_text)
        con = stdout_console()
        s = imported.spec
        moe = f", MoE {s.moe.experts} experts, top-{s.moe.experts_per_token}" if s.moe else ""
        con.print(f"{name}: {s.params / 1e9:.2f} B parameters ({s.active_params / 1e9:.2f} B active){moe}, "
                  f"KV {s.kv_bytes_per_token / 1024:.0f} KiB per token (bf16), context {s.max_context or 'unchecked'}, "
                  f"weights {weights_gib(s)}")
        notes = list(imported.notes)
        if name in Catalog.load(models_path=DEFAULT_MODELS_PATH).models:
            notes.append(f"'{name}' is a bundled model: with this catalog folder its entry replaces the bundled one, and the "
                         f"bundled profiles of '{name}' were measured on the bundled model; use another --name unless it is the same model")
        for n in notes:
            con.print(f"[yellow]note:[/] {n}", highlight=False)
        con.print(f"written to {models_file} and {facts_file}; plan it with: planner --catalog {into} solve ...")

    @catalog_app.command("list")
    @friendly_errors
    def list_catalog() -> None:
        """Models and GPU types known (bundled, and the --catalog folder's)."""
        from planner.io.catalog import Catalog

        cat = Catalog.load()
        user_models, user_gpus = _user_names("models.yaml"), _user_names("gpus.yaml")
        con = stdout_console()
        t = Table(title="Models")
        for col in ("model", "params B", "active B", "KV KiB/token", "context", "from"):
            t.add_column(col, justify="left" if col in ("model", "from") else "right")
        for m, s in sorted(cat.models.items()):
            t.add_row(m, f"{s.params / 1e9:.2f}", f"{s.active_params / 1e9:.2f}", f"{s.kv_bytes_per_token / 1024:.0f}",
                      str(s.max_context or "-"), "catalog folder" if m in user_models else "bundled")
        con.print(t)
        g = Table(title="GPU types")
        for col in ("GPU", "memory GiB", "HBM TB/s", "bf16 TFLOP/s", "$/h", "from"):
            g.add_column(col, justify="left" if col in ("GPU", "from") else "right")
        for n, gt in sorted(cat.gpus.items()):
            g.add_row(n, f"{gt.memory_gib:g}", f"{gt.hbm_tb_s:g}", f"{gt.bf16_tflops:g}", f"{gt.price_per_hour:.2f}",
                      "catalog folder" if n in user_gpus else "bundled")
        con.print(g)

    @catalog_app.command("show")
    @friendly_errors
    def show(name: str = typer.Argument(..., help="a model or GPU type of `planner catalog list` (any case)")) -> None:
        """One model or GPU type in full: a model's architecture, parameters, KV bytes per token and weights at bf16
        and fp8, context, and per GPU type, TP size and precision whether its laws are measured or the prior's; a GPU
        type's memory, peak FLOP/s, bandwidth, price, power and the models profiled on it."""
        from planner.io.catalog import Catalog
        from planner.perf.laws import PerfModel

        cat = Catalog.load()
        model, gpu = _resolve(cat, name)
        pm = PerfModel.load(catalog=cat)  # the planner's laws: bundled profiles and the --catalog folder's
        if model is not None:
            _show_model(cat, pm, model, model in _user_names("models.yaml"))
        if gpu is not None:
            _show_gpu(cat, pm, gpu, gpu in _user_names("gpus.yaml"))
