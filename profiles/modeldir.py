"""A weightless model folder for ``vllm serve --load-format dummy``: config.json + a word-level tokenizer.

vLLM needs a model's architecture (``config.json``) and a tokenizer, not its weights, to run it with
random weights (``--load-format dummy``); the timings of a dense or MoE decoder depend on its shapes
only. This module writes that folder from the catalog: sizes from ``profiles/models.yaml``
(:class:`planner.io.schema.ModelSpec`), serving facts (architecture class, rope, context length, norm eps,
bos/eos) from ``profiles/model_configs.yaml``. The tokenizer is a WordLevel ``tokenizer.json`` (the
serialisation format of the Hugging Face ``tokenizers`` library) with one entry per vocabulary id,
so any token id the profiler sends (and any id the random weights sample) decodes.

Pure functions build the dicts; :func:`write_model_dir` is the only I/O.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from planner.io.errors import InputError
from planner.io.schema import ModelSpec

MODEL_CONFIGS_PATH = Path(__file__).resolve().parent / "model_configs.yaml"
# What config.json says the weights are: the catalog's dtype_bytes 2 = bfloat16 (models.yaml header).
TORCH_DTYPE = "bfloat16"
UNK_TOKEN = "<unk>"


@dataclass(frozen=True)
class ServingFacts:
    """The config.json facts beyond the sizes in models.yaml (one entry of model_configs.yaml)."""

    architecture: str
    model_type: str
    max_position_embeddings: int
    rope_theta: float
    rms_norm_eps: float
    bos_token_id: int
    eos_token_id: int
    rope_scaling: Mapping[str, object] | None = None
    norm_topk_prob: bool | None = None
    # config.json keys copied verbatim (an imported model's, planner/io/hfconfig.py: activation, biases,
    # sliding window, ...); the sizes and the facts above are always the catalog's
    extra: Mapping[str, object] | None = None


_REQUIRED = ("architecture", "model_type", "max_position_embeddings", "rope_theta", "rms_norm_eps", "bos_token_id",
             "eos_token_id")


def load_serving_facts(model: str, path: str | os.PathLike[str] | None = None) -> ServingFacts:
    """The entry of `model` in model_configs.yaml; a missing model or field is an InputError naming it.
    Without `path`: the user's catalog folder's model_configs.yaml (planner/io/catalog.py) where it has
    the model, else the bundled one."""
    from planner.io.catalog import user_catalog_file
    from planner.io.files import read_yaml_mapping

    files = ([Path(path)] if path is not None
             else [f for f in (user_catalog_file("model_configs.yaml"), MODEL_CONFIGS_PATH) if f])
    known: list[str] = []
    for p in files:
        data = read_yaml_mapping(p)
        known += [str(k) for k in data]
        if isinstance(data.get(model), dict):
            break
    else:
        raise InputError(" + ".join(map(str, files)), model,
                         f"no serving facts for model {model!r} (known: {', '.join(sorted(set(known)))}); "
                         "add its architecture, rope and context length from its config.json "
                         "(`planner catalog import-hf`)")
    entry = data[model]
    assert isinstance(entry, dict)  # the loop above stops only at a model whose entry is a mapping
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise InputError(str(p), f"{model}.{missing[0]}", f"required to write config.json (missing: {missing})")
    field_names = set(ServingFacts.__dataclass_fields__)
    unknown = sorted(set(entry) - field_names)
    if unknown:
        raise InputError(str(p), f"{model}.{unknown[0]}", f"unknown field; expected one of {sorted(field_names)}")
    return ServingFacts(**entry)


def hf_config(spec: ModelSpec, facts: ServingFacts) -> dict[str, object]:
    """config.json of the model's public architecture (dense or MoE), bf16 (a JSON blob)."""
    cfg: dict[str, object] = {
        "architectures": [facts.architecture],
        "model_type": facts.model_type,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab,
        "max_position_embeddings": facts.max_position_embeddings,
        "rope_theta": facts.rope_theta,
        "rope_scaling": dict(facts.rope_scaling) if facts.rope_scaling else None,
        "rms_norm_eps": facts.rms_norm_eps,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": spec.tied_embeddings,
        "bos_token_id": facts.bos_token_id,
        "eos_token_id": facts.eos_token_id,
        "torch_dtype": TORCH_DTYPE,
        "use_cache": True,
    }
    if facts.model_type == "llama":
        cfg.update({"mlp_bias": False, "pretraining_tp": 1})
    if facts.model_type.startswith("qwen3"):
        cfg.update({"use_sliding_window": False, "sliding_window": None, "max_window_layers": spec.layers})
    if facts.extra:
        from planner.io.hfconfig import CATALOG_CONFIG_KEYS

        cfg.update({k: v for k, v in facts.extra.items() if k not in CATALOG_CONFIG_KEYS})
    if spec.moe is not None:
        cfg.update(_moe_keys(spec, facts))
    return cfg


def _moe_keys(spec: ModelSpec, facts: ServingFacts) -> dict[str, object]:
    """The experts in the config keys of the model's family (transformers' configuration_<model_type>.py)."""
    m = spec.moe
    assert m is not None
    if facts.model_type == "mixtral":  # every expert is intermediate_size wide; no shared expert in the family
        if m.shared_experts:
            raise InputError(None, f"{spec.name}.moe.shared_experts",
                             "Mixtral configs have no shared expert; expected 0")
        return {"num_local_experts": m.experts, "num_experts_per_tok": m.experts_per_token,
                "intermediate_size": m.expert_intermediate}
    if facts.model_type in ("qwen3_moe", "qwen2_moe", "olmoe"):
        keys: dict[str, object] = {
            "num_experts": m.experts, "num_experts_per_tok": m.experts_per_token,
            "moe_intermediate_size": m.expert_intermediate,
            "norm_topk_prob": bool(facts.norm_topk_prob), "output_router_logits": False,
        }
        if facts.model_type != "olmoe":
            keys.update({"decoder_sparse_step": 1, "mlp_only_layers": []})  # every layer is MoE
        if facts.model_type == "qwen3_moe":
            keys["router_aux_loss_coef"] = 0.001
            if m.shared_experts:
                raise InputError(None, f"{spec.name}.moe.shared_experts",
                                 "Qwen3-MoE configs have no shared expert; expected 0")
        elif facts.model_type == "qwen2_moe":
            keys["shared_expert_intermediate_size"] = m.shared_experts * m.expert_intermediate
        elif m.shared_experts:
            raise InputError(None, f"{spec.name}.moe.shared_experts", "OLMoE configs have no shared expert; expected 0")
        return keys
    raise InputError(None, f"{spec.name}.model_type",
                     f"MoE config keys of model type {facts.model_type!r} are not known; expected "
                     "mixtral, qwen2_moe, qwen3_moe or olmoe (profile this model with its real config and weights)")


def special_tokens(facts: ServingFacts) -> dict[int, str]:
    return {facts.bos_token_id: "<|bos|>", facts.eos_token_id: "<|eos|>"}


def word_level_tokenizer(vocab_size: int, facts: ServingFacts) -> dict[str, object]:
    """A ``tokenizers`` WordLevel tokenizer.json (a JSON blob) with `vocab_size` entries: id i is the word ``w<i>``
    (bos/eos ids are special tokens), split on whitespace; decoding joins words with spaces."""
    special = special_tokens(facts)
    if any(i >= vocab_size for i in special):
        raise InputError(None, "bos_token_id",
                         f"bos/eos ids {sorted(special)} must be below the vocabulary size {vocab_size}")
    unk_id = 0 if 0 not in special else next(i for i in range(vocab_size) if i not in special)
    vocab: dict[str, int] = {}
    for i in range(vocab_size):
        vocab[special.get(i, UNK_TOKEN if i == unk_id else f"w{i}")] = i
    added = [{"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True}
             for i, tok in sorted(special.items())]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
        "decoder": None,  # tokenizers' default: words joined by spaces (the profiler never reads the text)
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK_TOKEN},
    }


def tokenizer_config(facts: ServingFacts, max_len: int) -> dict[str, object]:
    special = special_tokens(facts)
    return {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": special[facts.bos_token_id],
            "eos_token": special[facts.eos_token_id], "unk_token": UNK_TOKEN, "model_max_length": max_len,
            "clean_up_tokenization_spaces": False}


def write_model_dir(spec: ModelSpec, out: str | os.PathLike[str], facts: ServingFacts | None = None,
                    tokenizer: bool = True) -> Path:
    """Write config.json (+ tokenizer.json, tokenizer_config.json) into `out`; returns the folder."""
    facts = facts or load_serving_facts(spec.name)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(hf_config(spec, facts), indent=1))
    (d / "generation_config.json").write_text(json.dumps({"bos_token_id": facts.bos_token_id,
                                                          "eos_token_id": facts.eos_token_id}))
    if tokenizer:
        (d / "tokenizer.json").write_text(json.dumps(word_level_tokenizer(spec.vocab, facts), separators=(",", ":")))
        (d / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(facts, facts.max_position_embeddings),
                                                            indent=1))
    return d
