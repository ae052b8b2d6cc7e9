"""A catalog entry from a model's Hugging Face ``config.json``: the sizes models.yaml holds and the
serving facts model_configs.yaml holds, so a model nobody here catalogued can be planned (roofline
prior) and profiled weightless (``planner profile --backend vllm --dummy-weights``).

Pure: :func:`from_hf_config` maps a parsed config to records and says what it could not carry;
`planner catalog import-hf` (planner/cli/catalog.py) reads the file and writes the folder.

What the planner's cost model describes, and so what is imported (planner/perf/prior.py): a decoder-only
transformer with grouped-query attention over the whole context and a gated FFN (SwiGLU / GeGLU), dense or
a mixture of experts on every layer; a dense plain MLP (up and down only) where the family has one
(_PLAIN_FFN_TYPES). Refused, with the field that says so (exit 2, nothing written):
encoders and encoder-decoders (an ``architectures`` head such as ``BertForMaskedLM``, ``is_encoder_decoder``),
multi-head latent attention (DeepSeek-V2/V3's ``kv_lora_rank``: its KV cache is not heads x head_dim),
layers of linear attention or state-space mixers (``layer_types`` other than full/sliding attention,
Mamba-style ``ssm_*`` / ``mamba_*`` keys), MoE on some layers only (``decoder_sparse_step`` != 1,
``mlp_only_layers``, ``first_k_dense_replace``, Llama 4's ``interleave_moe_layer_step``), experts under keys not
read (ERNIE-4.5's ``moe_num_experts``, ``n_routed_experts``: sized as dense otherwise), multimodal wrappers (``text_config``: import the text
model's config), GPT-2 / Falcon-style key names (``n_embd``, ``num_kv_heads``, ``multi_query``: read
as Llama's keys they would mis-state the KV heads), a ``rope_theta`` or ``rms_norm_eps`` that is not a positive number
(one written as a string, "500000.0", is read as that number, with a note). Carried with a note: a sliding window
(the KV cache and attention are modelled over the whole context, which over-states both: the safe side), quantized
checkpoints (the entry describes the bf16 model; FP8 pools are the fleet's ``limits.allowed_dtypes``), float32 checkpoints (vLLM serves them
in bf16 by default, ``--dtype auto``).

Key names, per family (transformers' configuration_<model_type>.py): sizes ``num_hidden_layers``,
``hidden_size``, ``num_attention_heads``, ``num_key_value_heads`` (absent = MHA, noted), ``head_dim`` (absent
= hidden / heads), ``intermediate_size``, ``vocab_size``, ``max_position_embeddings`` (absent: the context unchecked, noted); experts
``num_local_experts`` (Mixtral) or ``num_experts`` (Qwen2/3-MoE, OLMoE), ``num_experts_per_tok``,
``moe_intermediate_size`` (Mixtral: the expert width is ``intermediate_size``), Qwen2-MoE's shared
expert ``shared_expert_intermediate_size`` (counted as that width over the expert width experts); Llama 4's shared
expert, which no key states, counted as one of the routed width (_IMPLICIT_SHARED_EXPERTS).
A config without ``tie_word_embeddings`` takes its family's default (_TIED_BY_DEFAULT / _UNTIED_BY_DEFAULT);
of a family in neither, untied embeddings are assumed (the larger weight count), with a note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from planner.io.errors import InputError
from planner.io.schema import ModelSpec, MoeSpec

# Keys of config.json that say the model is outside what the cost model describes (module doc).
_MLA_KEYS = ("kv_lora_rank", "q_lora_rank")
_PARTIAL_MOE_KEYS = ("first_k_dense_replace", "moe_layer_freq")
# Expert counts under other keys than the two read (_moe): ERNIE-4.5-MoE's `moe_num_experts`, DeepSeek / GLM-4.5 /
# dots.llm1's `n_routed_experts`. Unread, such a MoE was imported as a dense model of its `intermediate_size`.
_UNREAD_EXPERT_KEYS = ("moe_num_experts", "n_routed_experts")
# Families whose MoE layer always holds shared experts of the routed width, with no config key for them
# (transformers' Llama4TextMoe: one shared expert of intermediate_size beside the routed ones).
_IMPLICIT_SHARED_EXPERTS = {"llama4_text": 1}
# Heads of encoder models (transformers' <Model>For<Head> classes that are not generative): BERT-style encoders
# attend both ways and generate nothing, so vLLM serves them for pooling only; imported, they were sized as decoders.
_ENCODER_HEADS = ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
                  "ForMultipleChoice", "ForPreTraining", "ForNextSentencePrediction")
_SSM_PREFIXES = ("ssm_", "mamba_", "linear_conv", "linear_key", "linear_num")
# Attention kinds of `layer_types` the model carries (the rest are linear attention / SSM mixers).
_ATTENTION_LAYER_TYPES = {"full_attention", "sliding_attention"}
CATALOG_CONFIG_KEYS = frozenset({
    "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling",
    "rope_parameters", "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id", "torch_dtype",
    "num_local_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
    "shared_expert_intermediate_size", "norm_topk_prob"})
"""config.json keys that come from the catalog entry and the serving facts (profiles.modeldir.hf_config writes
them); never taken from, nor kept in, the facts' verbatim `extra`."""
# Keys not copied into the weightless folder's config.json: provenance, loader-only and quantization entries (the
# folder is served with --load-format dummy in bf16), and what hf_config computes.
_NOT_COPIED = CATALOG_CONFIG_KEYS | {"_name_or_path", "transformers_version", "auto_map", "quantization_config", "dtype"}
# Families whose dense MLP is plain, up and down matrices only (transformers' modeling_<type>.py, read in the 4.57.1
# and 5.25.0 wheels at stop 53: phi fc1/fc2, starcoder2 c_fc/c_proj, gpt_neox dense_h_to_4h/dense_4h_to_h, nemotron
# up_proj/down_proj with relu2, falcon dense_h_to_4h/dense_4h_to_h, gpt_bigcode c_fc/c_proj); every other family
# imported is gated (gate, up, down).
_PLAIN_FFN_TYPES = frozenset({"phi", "starcoder2", "gpt_neox", "nemotron", "falcon", "gpt_bigcode"})
# tie_word_embeddings where config.json leaves it out: the family's configuration class default (the same wheels;
# starcoder2 inherits PretrainedConfig's True in 4.57.1 and states True in 5.25.0).
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3_text", "cohere", "cohere2", "ernie4_5", "starcoder2", "falcon",
                              "gpt_bigcode"})
_UNTIED_BY_DEFAULT = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "phi", "gpt_neox", "granite",
    "granitemoe", "olmo", "olmo2", "olmoe", "gpt_oss", "nemotron", "stablelm", "glm4", "exaone4", "seed_oss",
    "hunyuan_v1_dense", "minimax"})
KNOWN_MODEL_TYPES = _PLAIN_FFN_TYPES | _TIED_BY_DEFAULT | _UNTIED_BY_DEFAULT | frozenset(_IMPLICIT_SHARED_EXPERTS)
"""The families whose FFN and embedding tying were read from transformers (above); another is imported on the gated,
untied assumption, with a note."""
# GPT-2 / GPT-BigCode / Falcon key names: the sizes and KV heads under other keys than the ones read here.
_LEGACY_KEYS = {"n_embd": "hidden_size", "n_head": "num_attention_heads", "n_layer": "num_hidden_layers",
                "num_kv_heads": "num_key_value_heads", "multi_query": "num_key_value_heads"}
# The checkpoint dtypes vLLM serves at 2 bytes per weight with --dtype auto (float32 is cast to bf16).
_HALF_DTYPES = {"bfloat16", "float16", "bf16", "fp16", "half"}


@dataclass(frozen=True)
class ImportedModel:
    """A model's catalog entry (models.yaml), serving facts (model_configs.yaml) and what was not carried."""

    spec: ModelSpec
    facts: dict[str, object]
    notes: list[str] = field(default_factory=list)


def _int(cfg: Mapping[str, object], key: str, src: str, default: int | None = None) -> int:
    """A positive integer field of the config; absent (with no default) or not an integer is an InputError."""
    v = cfg.get(key)
    if v is None:  # absent or null: the family's default where it has one
        v = default
    if v is None:
        raise InputError(src, key, "required (a positive integer) to size the model")
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise InputError(src, key, f"expected a positive integer, got {v!r}")
    return v


def _refuse_unmodelled(cfg: Mapping[str, object], src: str) -> None:
    """InputError naming the first field that puts the model outside the cost model (module doc)."""
    if "text_config" in cfg:
        raise InputError(src, "text_config", "a multimodal wrapper; import the text model's config.json (its text_config) instead")
    archs = cfg.get("architectures")
    arch = str(archs[0]) if isinstance(archs, list) and archs else ""
    head = next((h for h in _ENCODER_HEADS if arch.endswith(h)), None)
    if head is not None:
        raise InputError(src, "architectures", f"{arch} is an encoder ({head[3:]} head), not modelled; expected a "
                         "decoder-only model vLLM generates with (e.g. ['LlamaForCausalLM'])")
    if cfg.get("is_encoder_decoder"):
        raise InputError(src, "is_encoder_decoder", "encoder-decoder models are not modelled; expected a decoder-only "
                         "model (e.g. ['LlamaForCausalLM'])")
    for k, ours in _LEGACY_KEYS.items():
        if k in cfg:
            raise InputError(src, k, "GPT-2 / Falcon-style keys are not read (taken for Llama's, the KV heads could be "
                             f"mis-stated); expected Llama-style keys: import a copy with {ours} in its place")
    for k in _MLA_KEYS:
        if cfg.get(k):
            raise InputError(src, k, "multi-head latent attention (DeepSeek-style) is not modelled: its KV cache is a "
                             "latent of kv_lora_rank, not heads x head_dim; expected grouped-query attention")
    types = cfg.get("layer_types")
    if isinstance(types, list):
        other = sorted({str(t) for t in types} - _ATTENTION_LAYER_TYPES)
        if other:
            raise InputError(src, "layer_types", f"layers of {', '.join(other)} are not modelled; expected attention layers only "
                             f"({', '.join(sorted(_ATTENTION_LAYER_TYPES))})")
    for k in cfg:
        if k.startswith(_SSM_PREFIXES):
            raise InputError(src, k, "state-space / linear-attention mixers are not modelled; expected a transformer decoder")
    for k in _PARTIAL_MOE_KEYS:
        if cfg.get(k):
            raise InputError(src, k, "experts on some layers only are not modelled; expected every layer dense or every layer MoE")
    for key in ("decoder_sparse_step", "interleave_moe_layer_step"):  # Qwen-MoE's, Llama 4's (Maverick: 2)
        step = cfg.get(key, 1)
        if step not in (None, 1):
            raise InputError(src, key, f"MoE every {step} layers is not modelled; expected 1 (every layer)")
    if cfg.get("mlp_only_layers"):
        raise InputError(src, "mlp_only_layers", "dense layers among MoE layers are not modelled; expected an empty list")
    for k in _UNREAD_EXPERT_KEYS:
        if cfg.get(k):
            raise InputError(src, k, "experts under this key are not read (the model would be sized as a dense one); "
                             "expected num_local_experts or num_experts with num_experts_per_tok")


def _moe(cfg: Mapping[str, object], src: str, notes: list[str]) -> MoeSpec | None:
    """The experts of a MoE config, None for a dense one."""
    key = next((k for k in ("num_local_experts", "num_experts") if cfg.get(k)), None)
    if key is None:
        return None
    experts = _int(cfg, key, src)
    top_k = _int(cfg, "num_experts_per_tok", src)
    width_key = "moe_intermediate_size" if cfg.get("moe_intermediate_size") else "intermediate_size"
    width = _int(cfg, width_key, src)
    shared = 0
    # present, a positive integer (found in QA: "20480", 20480.0 and -1 were each dropped without a word, Qwen2-57B-A14B
    # imported as 51.24 B parameters, 8.08 B active, for 57.41 and 14.25); 0, absent or null: no shared expert
    shared_width = (_int(cfg, "shared_expert_intermediate_size", src)
                    if cfg.get("shared_expert_intermediate_size") not in (None, 0) else 0)
    if shared_width > 0:
        shared = max(1, round(shared_width / width))
        notes.append(f"shared expert of {shared_width} counted as {shared} expert(s) of {width} (shared_expert_intermediate_size)")
    implicit = _IMPLICIT_SHARED_EXPERTS.get(str(cfg.get("model_type")), 0)
    if implicit and not shared:
        shared = implicit
        notes.append(f"{implicit} shared expert(s) of {width} counted, as every {cfg.get('model_type')} MoE layer has "
                     "(no config key states it)")
    if top_k > experts:
        raise InputError(src, "num_experts_per_tok", f"{top_k} experts per token exceeds the {experts} experts ({key})")
    return MoeSpec(experts=experts, experts_per_token=top_k, expert_intermediate=width, shared_experts=shared)


def _positive(v: object, key: str, src: str, default: float, notes: list[str]) -> float:
    """A positive finite number field of the config (rope_theta, rms_norm_eps); absent or null: `default` (the
    family default the facts have always taken). A number written as a string ("500000.0") is read as that number,
    with a note; anything else is an InputError naming the field (found by hand: a string rope_theta, numeric or
    not, and `true` were replaced by 10000.0 with no word, exit 0: Llama-3's 500000.0 written as 10000.0)."""
    if v is None:
        return default
    x = math.nan
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            pass
        else:
            if math.isfinite(x) and x > 0:
                notes.append(f"{key} given as the string {v!r}: read as the number {x:g}")
    if not (math.isfinite(x) and x > 0):
        raise InputError(src, key, f"expected a positive number, got {v!r}")
    return x


def _rope(cfg: Mapping[str, object], src: str, notes: list[str]) -> tuple[float, dict[str, object] | None]:
    """(rope theta, rope scaling) from the old keys or transformers 5's ``rope_parameters``."""
    params = cfg.get("rope_parameters")
    # found in QA: a rope_scaling of "llama3" or [8, 8192] was dropped without a word (the weightless folder served
    # without the scaling); present, each is a mapping or null
    for key in ("rope_parameters", "rope_scaling"):
        if cfg.get(key) is not None and not isinstance(cfg.get(key), Mapping):
            raise InputError(src, key, f"expected a mapping (e.g. {{\"rope_type\": \"llama3\", \"factor\": 8.0}}) or null, "
                             f"got {cfg.get(key)!r}")
    if isinstance(params, Mapping):
        key = "rope_parameters.rope_theta" if "rope_theta" in params else "rope_theta"
        theta = _positive(params.get("rope_theta", cfg.get("rope_theta")), key, src, 10000.0, notes)
        scaling: dict[str, object] = {str(k): v for k, v in params.items() if k != "rope_theta"}
        if scaling.get("rope_type") == "default":
            scaling = {}
        return theta, (scaling or None)
    old = cfg.get("rope_scaling")
    return (_positive(cfg.get("rope_theta"), "rope_theta", src, 10000.0, notes),
            {str(k): v for k, v in old.items()} if isinstance(old, Mapping) else None)


# RoPE types whose factor vLLM does not apply to the context (vllm/config/model.py, _get_and_verify_max_len): these
# configs' max_position_embeddings is already the extended context; "default" and mrope (read as default) have no factor
_CONTEXT_UNSCALED_ROPE = frozenset({"su", "longrope", "llama3", "default", "mrope"})


def _served_context(max_pos: int | None, scaling: Mapping[str, object] | None, model_type: str, src: str,
                    notes: list[str]) -> int | None:
    """The context vLLM serves (its derived max_model_len): max_position_embeddings times the RoPE scaling factor for
    linear, dynamic and YaRN scaling (YaRN's from original_max_position_embeddings), as vLLM derives it; found in QA:
    Qwen2.5's YaRN factor 4 over 32768 was imported as a 32768-token context where vLLM serves 131072, and prompts
    beyond 32768 were refused. Gemma 3's max_position_embeddings is already scaled (vLLM skips it there too)."""
    if max_pos is None or not scaling or model_type.startswith("gemma3"):
        return max_pos
    rope_type = str(scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type in _CONTEXT_UNSCALED_ROPE:
        return max_pos
    factor = scaling.get("factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not (math.isfinite(factor) and factor > 0):
        raise InputError(src, "rope_scaling.factor", f"expected a positive number, got {factor!r}")
    base = max_pos
    if rope_type == "yarn" and scaling.get("original_max_position_embeddings") is not None:
        base = _int(scaling, "original_max_position_embeddings", src)
    served = int(base * factor)
    if served != max_pos:
        notes.append(f"context {served} tokens: {rope_type} RoPE scaling x{factor:g} over "
                     f"{'original_max_position_embeddings' if base != max_pos else 'max_position_embeddings'} {base}, "
                     "as vLLM derives its max_model_len (lower it with vLLM's --max-model-len)")
    return served


def _token_id(cfg: Mapping[str, object], key: str, default: int, notes: list[str]) -> int:
    v = cfg.get(key)
    if isinstance(v, list) and v:
        v = v[0]
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    notes.append(f"{key} absent; {default} used for the weightless folder's tokenizer")
    return default


def from_hf_config(cfg: Mapping[str, object], name: str, source: str, hf_id: str | None = None) -> ImportedModel:
    """The catalog entry of the model `cfg` (a parsed config.json read from `source`) describes.

    Raises InputError naming `source` and the field when the model is outside the cost model or a size
    is missing (module doc); everything it could carry only approximately is listed in `notes`."""
    if not isinstance(cfg, Mapping):
        raise InputError(source, None, "expected a JSON object (a Hugging Face config.json)")
    _refuse_unmodelled(cfg, source)
    notes: list[str] = []
    archs = cfg.get("architectures")
    if not (isinstance(archs, list) and archs and isinstance(archs[0], str)):
        raise InputError(source, "architectures", "expected a list naming the model class vLLM serves (e.g. ['LlamaForCausalLM'])")
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise InputError(source, "model_type", "expected the transformers model type (e.g. 'llama')")
    hidden = _int(cfg, "hidden_size", source)
    heads = _int(cfg, "num_attention_heads", source)
    kv_heads = _int(cfg, "num_key_value_heads", source, default=heads)
    if heads % kv_heads:
        raise InputError(source, "num_key_value_heads", f"{kv_heads} must divide num_attention_heads {heads}")
    head_dim = cfg.get("head_dim")
    if head_dim is None:
        if hidden % heads:
            raise InputError(source, "head_dim", f"absent and hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        head_dim = hidden // heads
    head_dim = _int({"head_dim": head_dim}, "head_dim", source)
    if cfg.get("num_key_value_heads") is None:  # found in QA: taken as MHA without a word, 4x the KV of a GQA model
        notes.append(f"num_key_value_heads absent: read as num_attention_heads {heads} (multi-head attention, KV "
                     f"{2 * kv_heads * head_dim * 2 * _int(cfg, 'num_hidden_layers', source) // 1024} KiB per token at "
                     "bf16, as transformers' Llama reads it); a family whose configuration defaults it otherwise "
                     "(Mistral's and Mixtral's: 8) is over-stated: add the key with the model's KV heads")
    moe = _moe(cfg, source, notes)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    if dtype not in _HALF_DTYPES:
        # the cast is float32's only (found in QA: float8_e4m3fn was told "vLLM --dtype auto casts float32 to bf16")
        why = ("vLLM --dtype auto casts float32 to bf16" if dtype in ("float32", "float", "fp32") else
               "the entry describes the bf16 model; FP8 pools are the fleet's limits.allowed_dtypes")
        notes.append(f"checkpoint dtype {dtype}: modelled as served in bf16 ({why})")
    quant = cfg.get("quantization_config")
    if isinstance(quant, Mapping):
        method = quant.get("quant_method", "?")
        notes.append(f"quantization_config ({method}) not carried: the entry is the bf16 model; allow FP8 pools with "
                     "the fleet's limits.allowed_dtypes (int4 methods are not modelled)")
    window = cfg.get("sliding_window")
    if isinstance(window, int) and window > 0 and cfg.get("use_sliding_window", True) is not False:
        notes.append(f"sliding window of {window} tokens modelled as full attention over the context "
                     "(KV cache and attention time over-stated beyond the window: the safe side)")
    tied = cfg.get("tie_word_embeddings")
    if tied is not None and not isinstance(tied, bool):  # bool("false") is True: a string would tie them silently
        raise InputError(source, "tie_word_embeddings", f"expected true or false, got {tied!r}")
    if tied is None and model_type in _TIED_BY_DEFAULT | _UNTIED_BY_DEFAULT:
        tied = model_type in _TIED_BY_DEFAULT  # the family's default, as transformers and vLLM read the config
        notes.append(f"tie_word_embeddings absent: {'tied' if tied else 'untied'}, the default of transformers' "
                     f"{model_type} configuration")
    elif tied is None:
        notes.append("tie_word_embeddings absent: untied embeddings assumed (the larger weight count)")
    gated = model_type not in _PLAIN_FFN_TYPES
    if model_type not in KNOWN_MODEL_TYPES:  # found in QA at stop 58: imported as a gated MLP without a word
        notes.append(f"model_type '{model_type}' is not a family this importer has read (planner/io/hfconfig.py's "
                     "tables): its dense FFN is assumed gated (gate, up and down: 3 x hidden x intermediate weights per "
                     "layer; a plain MLP has 2) and, where tie_word_embeddings is absent, its embeddings untied; check "
                     "both against the model's transformers modeling file")
    if not gated and moe is not None:
        raise InputError(source, "model_type", f"{model_type} with experts is not modelled; expected a dense {model_type}")
    if not gated:
        notes.append(f"plain MLP of {model_type} (up and down matrices, no gate): 2 x hidden x intermediate weights per layer")
    # present, a positive integer (found in QA: 0, -1, "131072" and 131072.0 were each noted as 'absent', the context
    # left unchecked and the weightless folder's window 32768); absent or null: unchecked, with a note
    max_context = (_int(cfg, "max_position_embeddings", source) if cfg.get("max_position_embeddings") is not None
                   else None)
    if max_context is None:
        notes.append("max_position_embeddings absent: prompt lengths are not checked against a context length")
    theta, scaling = _rope(cfg, source, notes)
    served_context = _served_context(max_context, scaling, model_type, source, notes)
    spec = ModelSpec(
        name=name, hf_id=hf_id or (str(cfg["_name_or_path"]) if cfg.get("_name_or_path") else None),
        layers=_int(cfg, "num_hidden_layers", source), hidden=hidden, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        intermediate=_int(cfg, "intermediate_size", source), gated_ffn=gated, vocab=_int(cfg, "vocab_size", source),
        tied_embeddings=bool(tied), max_context=served_context, moe=moe)
    eps_key = "rms_norm_eps" if "rms_norm_eps" in cfg else "layer_norm_eps"
    eps = _positive(cfg.get(eps_key), eps_key, source, 1e-6, notes)
    facts: dict[str, object] = {
        "architecture": archs[0], "model_type": model_type,
        "max_position_embeddings": max_context or 32768,
        "rope_theta": theta, "rope_scaling": dict(scaling) if scaling else None,
        "rms_norm_eps": eps,
        "bos_token_id": _token_id(cfg, "bos_token_id", 1, notes),
        "eos_token_id": _token_id(cfg, "eos_token_id", 2, notes),
    }
    if moe is not None and "norm_topk_prob" in cfg:
        topk = cfg["norm_topk_prob"]
        if topk is not None and not isinstance(topk, bool):  # bool("false") is True, as tie_word_embeddings' was
            raise InputError(source, "norm_topk_prob", f"expected true or false, got {topk!r}")
        facts["norm_topk_prob"] = bool(topk)  # null: false, as before
    facts["extra"] = {k: v for k, v in cfg.items() if k not in _NOT_COPIED}
    return ImportedModel(spec=spec, facts=facts, notes=notes)
