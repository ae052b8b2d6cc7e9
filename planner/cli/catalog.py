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
    from planner.io.schema import ModelSpec

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


def register(app: typer.Typer) -> None:
    """Add the `catalog` group (import-hf, list) to the root app."""
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
        from planner.io.catalog import Catalog, user_catalog_file

        cat = Catalog.load()
        user_models = set(_read_mapping(p)) if (p := user_catalog_file("models.yaml")) else set()
        user_gpus = set(_read_mapping(p)) if (p := user_catalog_file("gpus.yaml")) else set()
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
