"""A model nobody catalogued: `planner catalog import-hf` (planner/io/hfconfig.py) writes its catalog entry from
its Hugging Face config.json into a folder, and `planner --catalog DIR` / PLANNER_CATALOG plans and profiles it.

The two example configs (examples/byo-model/) are Mixtral-8x7B-v0.1's and Mistral-Nemo-Base-2407's public
config.json; their published sizes (46.7 B parameters, 12.9 B active; 12.2 B) check the import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from planner.cli.main import app
from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.io.hfconfig import from_hf_config
from profiles.modeldir import hf_config, load_serving_facts, write_model_dir

REPO = Path(__file__).resolve().parents[1]
BYO = REPO / "examples" / "byo-model"
runner = CliRunner()


def _cfg(name: str) -> dict:
    return json.loads((BYO / f"{name}.config.json").read_text())


@pytest.mark.parametrize("model", sorted(Catalog.load().models))
def test_a_bundled_models_own_config_imports_back_to_its_catalog_entry(model):
    """The weightless folder's config.json of each bundled model, imported, gives back the catalog entry and the
    serving facts: import and export agree on every size, MoE field and fact."""
    spec, facts = Catalog.load().model(model), load_serving_facts(model)
    imported = from_hf_config(hf_config(spec, facts), model, "config.json", spec.hf_id)
    assert imported.spec == spec
    for k in ("architecture", "model_type", "max_position_embeddings", "rope_theta", "rms_norm_eps", "bos_token_id", "eos_token_id"):
        assert imported.facts[k] == getattr(facts, k), k
    assert (imported.facts["rope_scaling"] or None) == (dict(facts.rope_scaling) if facts.rope_scaling else None)


def test_mixtral_and_nemo_import_with_their_published_sizes():
    mx = from_hf_config(_cfg("mixtral-8x7b"), "mixtral-8x7b", "mixtral.json")
    assert mx.spec.moe is not None and (mx.spec.moe.experts, mx.spec.moe.experts_per_token, mx.spec.moe.expert_intermediate) == (8, 2, 14336)
    assert mx.spec.params / 1e9 == pytest.approx(46.7, abs=0.1) and mx.spec.active_params / 1e9 == pytest.approx(12.9, abs=0.1)
    assert mx.notes == []  # sliding_window null, bf16, tied flag given: nothing approximated
    nemo = from_hf_config(_cfg("mistral-nemo-12b"), "mistral-nemo-12b", "nemo.json")
    assert (nemo.spec.hidden, nemo.spec.heads, nemo.spec.head_dim) == (5120, 32, 128)  # head_dim is not hidden / heads
    assert nemo.spec.params / 1e9 == pytest.approx(12.2, abs=0.1) and nemo.spec.hf_id == "mistralai/Mistral-Nemo-Base-2407"
    assert nemo.spec.kv_bytes_per_token == 2 * 40 * 8 * 128 * 2


def test_qwen25_and_qwen15_moe_import_with_their_published_sizes():
    """The two models of device session s14 (profiles/gpu_session.py PLAN_S14): Qwen2.5-14B's model card says 14.7 B
    parameters, 48 layers, 40 query / 8 KV heads; Qwen1.5-MoE-A2.7B's 14.3 B in all and 2.7 B activated."""
    q = from_hf_config(_cfg("qwen2.5-14b"), "qwen2.5-14b", "q.json")
    assert q.spec.moe is None and (q.spec.layers, q.spec.heads, q.spec.kv_heads, q.spec.head_dim) == (48, 40, 8, 128)
    assert q.spec.params / 1e9 == pytest.approx(14.7, abs=0.1)
    moe = from_hf_config(_cfg("qwen1.5-moe-a2.7b"), "qwen1.5-moe-a2.7b", "m.json")
    assert moe.spec.moe is not None and (moe.spec.moe.experts, moe.spec.moe.experts_per_token) == (60, 4)
    assert moe.spec.moe.shared_experts == 4  # the shared expert of 5,632 as four of the routed width 1,408
    assert moe.spec.params / 1e9 == pytest.approx(14.3, abs=0.1) and moe.spec.active_params / 1e9 == pytest.approx(2.7, abs=0.05)
    assert moe.spec.max_context == 8192


def _refused(cfg: dict) -> InputError:
    with pytest.raises(InputError) as e:
        from_hf_config(cfg, "m", "user/config.json")
    assert e.value.path == "user/config.json"
    return e.value


@pytest.mark.parametrize("change, field", [
    ({"kv_lora_rank": 512, "q_lora_rank": 1536}, "kv_lora_rank"),                  # DeepSeek's latent attention
    ({"layer_types": ["linear_attention", "full_attention"]}, "layer_types"),      # hybrid linear attention
    ({"mamba_d_state": 16}, "mamba_d_state"),                                      # a state-space mixer
    ({"num_experts": 64, "num_experts_per_tok": 4, "decoder_sparse_step": 2}, "decoder_sparse_step"),
    ({"num_experts": 64, "num_experts_per_tok": 4, "mlp_only_layers": [0]}, "mlp_only_layers"),
    ({"text_config": {"hidden_size": 4096}}, "text_config"),                       # a multimodal wrapper
    ({"hidden_size": None}, "hidden_size"),
    ({"num_key_value_heads": 5}, "num_key_value_heads"),                          # does not divide 32 heads
    ({"num_local_experts": 8, "num_experts_per_tok": 9}, "num_experts_per_tok"),
    ({"architectures": []}, "architectures"),
    # found in QA: bert-base-uncased's config (BertForMaskedLM) was imported as a 0.16 B decoder, exit 0
    ({"architectures": ["BertForMaskedLM"], "model_type": "bert"}, "architectures"),
    ({"architectures": ["XLMRobertaForSequenceClassification"]}, "architectures"),
    ({"is_encoder_decoder": True}, "is_encoder_decoder"),
    ({"multi_query": True}, "multi_query"),                                        # Falcon-7B: one KV head, not 32
    ({"num_kv_heads": 8}, "num_kv_heads"),                                         # Falcon-40B's key
    ({"n_embd": 5120}, "n_embd"),                                                  # GPT-2 / GPT-BigCode key names
    ({"model_type": "starcoder2", "num_experts": 8, "num_experts_per_tok": 2}, "model_type"),  # plain MLP with experts
    # found by hand: ERNIE-4.5-21B-A3B (64 experts under moe_num_experts) was imported as a dense 3.35 B model
    ({"moe_num_experts": 64, "moe_k": 6, "moe_intermediate_size": 1536}, "moe_num_experts"),
    ({"n_routed_experts": 64, "num_experts_per_tok": 6}, "n_routed_experts"),     # DeepSeek / GLM-4.5's key
    ({"num_local_experts": 128, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2}, "interleave_moe_layer_step"),
    # found by hand: "false" (a string) was read as tied, 7.50 B parameters for Llama-3.1-8B's 8.03 B, exit 0
    ({"tie_word_embeddings": "false"}, "tie_word_embeddings"),
    # found by a helper: the same of a MoE's norm_topk_prob, "false" written as true in model_configs.yaml
    ({"num_local_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": "false"}, "norm_topk_prob"),
])
def test_what_the_cost_model_does_not_describe_is_refused_naming_the_field(change, field):
    cfg = {**_cfg("mistral-nemo-12b"), **change}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    assert _refused(cfg).field == field


@pytest.mark.parametrize("max_pos", [0, -1, "131072", 131072.0, True])
def test_a_context_length_that_is_not_a_positive_integer_is_refused(max_pos):
    """Found in QA: max_position_embeddings 0, -1, "131072" or 131072.0 was noted as 'absent', the model's context
    left unchecked and its weightless folder served with a window of 32768, exit 0."""
    err = _refused({**_cfg("mistral-nemo-12b"), "max_position_embeddings": max_pos})
    assert err.field == "max_position_embeddings" and "positive integer" in str(err), err


def test_a_context_length_absent_or_null_is_unchecked_with_a_note():
    for cfg in ({k: v for k, v in _cfg("mistral-nemo-12b").items() if k != "max_position_embeddings"},
                {**_cfg("mistral-nemo-12b"), "max_position_embeddings": None}):
        im = from_hf_config(cfg, "m", "c.json")
        assert im.spec.max_context is None and any("max_position_embeddings absent" in n for n in im.notes)


@pytest.mark.parametrize("change, field, theta, eps, noted", [
    # found by hand: a string rope_theta, numeric or not, and `true` became 10000.0 with no word, exit 0
    ({"rope_theta": "500000.0"}, None, 500000.0, 1e-5, "rope_theta given as the string '500000.0'"),
    ({"rope_theta": "fast"}, "rope_theta", None, None, None),
    ({"rope_theta": True}, "rope_theta", None, None, None),
    ({"rope_theta": -1.0}, "rope_theta", None, None, None),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": "x"}}, "rope_parameters.rope_theta", None, None, None),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": "2e6"}}, None, 2e6, 1e-5, "rope_parameters.rope_theta"),
    ({"rms_norm_eps": "1e-6"}, None, 1e6, 1e-6, "rms_norm_eps given as the string '1e-6'"),
    ({"rms_norm_eps": "small"}, "rms_norm_eps", None, None, None),
    ({"rope_theta": None, "rms_norm_eps": None}, None, 10000.0, 1e-6, None),  # null: the defaults, as before
    ({"rope_theta": 500000}, None, 500000.0, 1e-5, None),  # an integer is a number
])
def test_a_numeric_fact_is_a_number_or_refused_naming_it(change, field, theta, eps, noted):
    """rope_theta and rms_norm_eps (Mistral-Nemo's: 1e6, 1e-5): a positive number, or one written as a string
    (read as that number, with a note); anything else is refused naming the field, not replaced by a default."""
    cfg = {**_cfg("mistral-nemo-12b"), **change}
    if field is not None:
        assert _refused(cfg).field == field
        return
    im = from_hf_config(cfg, "m", "c.json")
    assert (im.facts["rope_theta"], im.facts["rms_norm_eps"]) == (theta, eps)
    assert any(noted in n for n in im.notes) if noted else not any("given as the string" in n for n in im.notes)


def test_import_hf_of_a_non_numeric_rope_theta_is_exit_2_naming_the_file_and_field(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**_cfg("mistral-nemo-12b"), "rope_theta": "fast"}))
    r = runner.invoke(app, ["catalog", "import-hf", str(cfg), "--name", "m", "--into", str(tmp_path / "o")])
    said = r.output.replace("\n", "")
    assert r.exit_code == 2 and str(cfg) in said and "rope_theta" in said and "'fast'" in said, r.output
    assert not (tmp_path / "o").exists() and "Traceback" not in r.output


def test_llama4_counts_its_shared_expert():
    """Found by hand: Llama-4-Scout's text config (16 experts of 8,192, top-1) imported as 101.73 B parameters (11.13 B
    active), published 17 B active: every Llama 4 MoE layer also holds a shared expert of intermediate_size, which no
    key states (transformers' Llama4TextMoe); Maverick (interleave_moe_layer_step 2) was 778 B for 400 B (the table)."""
    scout = {"architectures": ["Llama4ForCausalLM"], "model_type": "llama4_text", "hidden_size": 5120, "head_dim": 128,
             "intermediate_size": 8192, "intermediate_size_mlp": 16384, "interleave_moe_layer_step": 1,
             "num_attention_heads": 40, "num_key_value_heads": 8, "num_hidden_layers": 48, "num_local_experts": 16,
             "num_experts_per_tok": 1, "vocab_size": 202048, "max_position_embeddings": 10485760}
    im = from_hf_config(scout, "scout", "c.json")
    assert im.spec.moe is not None and im.spec.moe.shared_experts == 1
    assert im.spec.active_params / 1e9 == pytest.approx(17.17, abs=0.01)  # published: 17 B active
    assert im.spec.params / 1e9 == pytest.approx(107.77, abs=0.01)  # published 109 B, its vision encoder included
    assert any("1 shared expert(s) of 8192" in n for n in im.notes)


def test_a_null_kv_heads_is_multi_head_attention():
    """Older configs write num_key_value_heads: null for MHA (transformers' default: the attention heads)."""
    cfg = {**_cfg("mistral-nemo-12b"), "num_key_value_heads": None}
    assert from_hf_config(cfg, "m", "c.json").spec.kv_heads == 32


@pytest.mark.parametrize("kv_heads, noted", [(8, False), (None, True), ("absent", True)])
def test_kv_heads_absent_are_said_to_be_read_as_the_attention_heads(kv_heads, noted):
    """Absent or null, num_key_value_heads is read as the attention heads (MHA): said, with the KV it gives, as a
    family may default it otherwise (found in QA: a Mistral config without the key imported at 4x its KV, no word)."""
    cfg = {**_cfg("mistral-nemo-12b"), "num_key_value_heads": kv_heads}
    if kv_heads == "absent":
        del cfg["num_key_value_heads"]
    notes = [n for n in from_hf_config(cfg, "m", "c.json").notes if n.startswith("num_key_value_heads absent")]
    assert bool(notes) == noted
    if noted:  # Mistral-Nemo: 40 layers x 32 heads x head_dim 128, K and V, 2 bytes
        assert "num_attention_heads 32" in notes[0] and f"KV {2 * 40 * 32 * 128 * 2 // 1024} KiB" in notes[0]


def test_approximations_are_said():
    cfg = {**_cfg("mistral-nemo-12b"), "sliding_window": 4096, "quantization_config": {"quant_method": "fp8"}, "torch_dtype": "float32",
           "model_type": "a_family_not_in_the_tables"}
    del cfg["tie_word_embeddings"]
    notes = " | ".join(from_hf_config(cfg, "m", "c.json").notes)
    for word in ("sliding window of 4096", "quantization_config (fp8)", "float32", "tie_word_embeddings absent"):
        assert word in notes


def test_a_config_without_tie_word_embeddings_takes_its_familys_default():
    """Found by hand at stop 53: Gemma-2-9B's config.json has no tie_word_embeddings; untied was assumed for every
    family, 10.16 B parameters where transformers' Gemma2Config (tie_word_embeddings=True) and vLLM load 9.24 B. A
    family's default is its configuration class's (planner/io/hfconfig.py's tables); one outside them keeps the note."""
    gemma2 = {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336,
              "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
              "vocab_size": 256000, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}
    im = from_hf_config(gemma2, "gemma-2-9b", "c.json")
    assert im.spec.tied_embeddings and im.spec.params / 1e9 == pytest.approx(9.24, abs=0.01)  # published: 9.24 B
    assert "tie_word_embeddings absent: tied, the default of transformers' gemma2 configuration" in im.notes
    llama_like = {**_cfg("mistral-nemo-12b")}
    del llama_like["tie_word_embeddings"]
    assert not from_hf_config(llama_like, "m", "c.json").spec.tied_embeddings  # MistralConfig: False
    unknown = from_hf_config({**llama_like, "model_type": "my_family"}, "m", "c.json")
    assert not unknown.spec.tied_embeddings and any("untied embeddings assumed" in n for n in unknown.notes)


@pytest.mark.parametrize("model_type, noted", [("my_family", True), ("a_family_not_in_the_tables", True),
                                               ("llama", False), ("starcoder2", False), ("gemma2", False)])
def test_an_unknown_family_is_said_to_be_assumed_gated_and_untied(tmp_path, model_type, noted):
    """Found in QA at stop 58: an unknown model_type was imported as a gated MLP (and untied) without a word; it is
    noted, in the import's notes and on the command line; a family of the importer's tables is not."""
    cfg = {**_cfg("mistral-nemo-12b"), "model_type": model_type}
    im = from_hf_config(cfg, "m", "c.json")
    assert any(f"model_type '{model_type}' is not a family" in n and "gated" in n for n in im.notes) == noted
    if noted:
        src = tmp_path / "config.json"
        src.write_text(json.dumps(cfg))
        res = CliRunner().invoke(app, ["catalog", "import-hf", str(src), "--name", "m", "--into", str(tmp_path / "cat")])
        assert res.exit_code == 0, res.output
        assert f"model_type '{model_type}' is not a family" in " ".join(res.output.split())


def test_a_plain_mlp_family_counts_two_ffn_matrices(tmp_path):
    """Found by hand at stop 53: StarCoder2's MLP (c_fc, c_proj: no gate) was counted as SwiGLU's three matrices, 22.0 B
    parameters for StarCoder2-15B (15.65 B with its tied embeddings): weights, FLOPs and the KV budget all off. A plain
    family's FFN is 2 x hidden x intermediate, its activation peak holds the up projection alone, and the torch
    reference decoder (SwiGLU only) refuses it."""
    from planner.perf.prior import activation_bytes_per_gpu

    sc2 = {"architectures": ["Starcoder2ForCausalLM"], "model_type": "starcoder2", "hidden_size": 6144,
           "intermediate_size": 24576, "num_hidden_layers": 40, "num_attention_heads": 48, "num_key_value_heads": 4,
           "vocab_size": 49152, "max_position_embeddings": 16384, "torch_dtype": "bfloat16"}
    im = from_hf_config(sc2, "starcoder2-15b", "c.json")
    spec = im.spec
    assert not spec.gated_ffn and spec.ffn_params_per_layer == 2 * 6144 * 24576
    per_layer_attn = 6144 * 6144 * 2 + 2 * 6144 * 4 * 128
    assert spec.params == 40 * (per_layer_attn + 2 * 6144 * 24576) + 49152 * 6144  # tied (Starcoder2Config's default)
    assert any("plain MLP of starcoder2" in n for n in im.notes)
    gated = spec.model_copy(update={"gated_ffn": True})
    diff = activation_bytes_per_gpu(gated, 1, 8192, 256) - activation_bytes_per_gpu(spec, 1, 8192, 256)
    assert diff == 8192 * 24576 * spec.activation_bytes  # one FFN output (the gate's) fewer per token
    from profiles.backends.torch_ref import load_shapes

    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"sc2": spec.model_dump(exclude={"name"}, exclude_none=True)}))
    with pytest.raises(SystemExit, match="gated_ffn"):
        load_shapes("sc2", models)


def test_qwen2_moe_shared_expert_counts_as_expert_widths_and_is_written_back():
    cfg = {**_cfg("mistral-nemo-12b"), "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "num_experts": 60,
           "num_experts_per_tok": 4, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632}
    im = from_hf_config(cfg, "qwen1.5-moe", "c.json")
    assert im.spec.moe is not None and im.spec.moe.shared_experts == 4 and "shared expert" in im.notes[0]
    from profiles.modeldir import ServingFacts

    out = hf_config(im.spec, ServingFacts(**im.facts))  # type: ignore[arg-type]
    assert out["shared_expert_intermediate_size"] == 5632 and out["num_experts"] == 60


@pytest.mark.parametrize("width, shared", [(5632, 4), (None, 0), (0, 0), ("5632", None), (5632.0, None), (-1, None), (True, None)])
def test_a_shared_expert_width_is_a_positive_integer_or_refused(width, shared):
    """A shared expert width that is not a positive integer was dropped without a word (found in QA: "20480" sized
    Qwen2-57B-A14B at 51.24 B parameters for 57.41); it is refused naming the field. 0, absent or null: none."""
    cfg = {**_cfg("mistral-nemo-12b"), "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "num_experts": 60,
           "num_experts_per_tok": 4, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": width}
    if shared is None:
        assert _refused(cfg).field == "shared_expert_intermediate_size"
    else:
        im = from_hf_config(cfg, "qwen1.5-moe", "c.json")
        assert im.spec.moe is not None and im.spec.moe.shared_experts == shared


@pytest.mark.parametrize("key, value", [("rope_scaling", "llama3"), ("rope_scaling", [8.0, 8192]), ("rope_parameters", "yarn"),
                                        ("rope_parameters", 1.0)])
def test_rope_scaling_that_is_not_a_mapping_is_refused_naming_it(key, value):
    """A rope_scaling / rope_parameters that is not a mapping was dropped without a word (found in QA: "llama3"
    imported with rope_scaling null): refused naming the field; a mapping or null is read as before."""
    assert _refused({**_cfg("mistral-nemo-12b"), key: value}).field == key
    for ok in (None, {"rope_type": "llama3", "factor": 8.0}):
        from_hf_config({**_cfg("mistral-nemo-12b"), key: ok}, "m", "c.json")


@pytest.mark.parametrize("dtype, said", [("float32", "casts float32"), ("float8_e4m3fn", "describes the bf16 model"),
                                         ("bfloat16", None)])
def test_a_checkpoint_dtype_note_says_what_is_true_of_it(dtype, said):
    """The float32 cast was named for every dtype not half (found in QA: float8_e4m3fn was told vLLM casts float32)."""
    notes = [n for n in from_hf_config({**_cfg("mistral-nemo-12b"), "torch_dtype": dtype}, "m", "c.json").notes
             if n.startswith("checkpoint dtype")]
    assert (said in notes[0]) if said else not notes


def _import(into: Path, name: str, *extra: str):
    return runner.invoke(app, ["catalog", "import-hf", str(BYO / f"{name}.config.json"), "--name", name, "--into", str(into), *extra])


def test_import_then_plan_and_write_the_weightless_folder(tmp_path, monkeypatch):
    cat = tmp_path / "cat"
    for m in ("mixtral-8x7b", "mistral-nemo-12b"):
        r = _import(cat, m)
        assert r.exit_code == 0, r.output
    assert set(yaml.safe_load((cat / "models.yaml").read_text())) == {"mixtral-8x7b", "mistral-nemo-12b"}
    before = (cat / "models.yaml").read_text()
    again = _import(cat, "mixtral-8x7b")
    assert again.exit_code == 2 and "--force" in again.output and (cat / "models.yaml").read_text() == before
    assert _import(cat, "mixtral-8x7b", "--force").exit_code == 0

    wl = tmp_path / "w.yaml"
    wl.write_text(yaml.safe_dump({"models": {"mixtral-8x7b": {"slo": {"ttft_ms": 800, "itl_ms": 40, "percentile": 90}}},
                                  "classes": [{"id": "mx/chat", "model": "mixtral-8x7b", "isl": 2000, "osl": 300, "rate_rps": 6}]}))
    fl = tmp_path / "f.yaml"
    fl.write_text(yaml.safe_dump({"gpus": {"H200-141GB": {"available": 8}}, "limits": {"allowed_tp": [1, 2]}}))
    missing = runner.invoke(app, ["solve", "-w", str(wl), "-f", str(fl)])
    assert missing.exit_code == 2 and "import-hf" in missing.output
    out = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["--catalog", str(cat), "solve", "-w", str(wl), "-f", str(fl), "-o", str(out)])
    assert r.exit_code == 0, r.output
    plan = yaml.safe_load(out.read_text())
    assert plan["models"]["mixtral-8x7b"]["pools"]

    monkeypatch.setenv("PLANNER_CATALOG", str(cat))
    spec = Catalog.load().model("mixtral-8x7b")
    d = write_model_dir(spec, tmp_path / "folder", tokenizer=False)
    written = json.loads((d / "config.json").read_text())
    assert written["num_local_experts"] == 8 and written["num_experts_per_tok"] == 2 and "num_experts" not in written
    assert written["architectures"] == ["MixtralForCausalLM"] and written["router_aux_loss_coef"] == 0.02  # a copied key
    assert Catalog.load().model("llama-3.1-8b").hidden == 4096  # the bundled entries stay


@pytest.mark.parametrize("raw", [
    b"\xff\xfe{\x00}\x00",                                   # UTF-16 with its byte-order mark (a Windows editor's save)
    b"\x89PNG\r\n\x1a\n",                                    # not text at all
])
def test_a_config_that_is_not_utf8_is_exit_2_naming_the_file(tmp_path, raw):
    """Found in QA: a config.json that is not UTF-8 was a UnicodeDecodeError traceback, exit 1."""
    cfg = tmp_path / "config.json"
    cfg.write_bytes(raw)
    r = runner.invoke(app, ["catalog", "import-hf", str(cfg), "--name", "m", "--into", str(tmp_path / "o")])
    said = r.output.replace("\n", "")
    assert r.exit_code == 2 and said.startswith(f"error: {cfg}") and "expected UTF-8 JSON" in said, r.output
    assert not (tmp_path / "o").exists() and "Traceback" not in r.output


def test_a_bad_catalog_folder_or_entry_is_exit_2_naming_it(tmp_path, monkeypatch):
    r = runner.invoke(app, ["--catalog", str(tmp_path / "nope"), "catalog", "list"])
    assert r.exit_code == 2 and "catalog folder" in r.output
    # found in QA: Click's three lines (Usage, Try 'planner --help', Error: Invalid value for --catalog ...)
    assert r.output.startswith("error:") and "field '--catalog'" in r.output and "Usage" not in r.output, r.output
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "models.yaml").write_text(yaml.safe_dump({"my-model": {"layers": 0, "hidden": 4096}}))
    r = runner.invoke(app, ["--catalog", str(cat), "catalog", "list"])
    assert r.exit_code == 2 and str(cat / "models.yaml") in r.output.replace("\n", "") and "my-model" in r.output
    (cat / "models.yaml").write_text("x: [")
    r = runner.invoke(app, ["--catalog", str(cat), "catalog", "list"])
    assert r.exit_code == 2 and "models.yaml" in r.output
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    r = runner.invoke(app, ["catalog", "import-hf", str(bad), "--name", "m", "--into", str(tmp_path / "o")])
    assert r.exit_code == 2 and "expected JSON" in r.output and not (tmp_path / "o").exists()
    r = runner.invoke(app, ["catalog", "import-hf", str(BYO / "mixtral-8x7b.config.json"), "--name", "Mixtral/8x7b",
                            "--into", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--name" in r.output and not (tmp_path / "o").exists()
    # found by hand at stop 50: a folder that cannot be created was a FileNotFoundError traceback
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["catalog", "import-hf", str(BYO / "mixtral-8x7b.config.json"), "--name", "m",
                            "--into", str(blocker / "sub")])
    assert r.exit_code == 2 and "--into" in r.output and "Traceback" not in r.output


def test_import_into_the_bundled_catalog_folder_is_refused(monkeypatch):
    """Found in QA: `--into profiles` rewrote the bundled profiles/models.yaml and model_configs.yaml through
    yaml.safe_dump (92 comment lines, every number's source, down to 2), exit 0."""
    before = {f: (REPO / "profiles" / f).read_bytes() for f in ("models.yaml", "model_configs.yaml")}
    monkeypatch.chdir(REPO)
    try:
        r = runner.invoke(app, ["catalog", "import-hf", str(BYO / "mistral-nemo-12b.config.json"), "--name", "my-nemo",
                                "--into", "profiles"])
        said = r.output.replace("\n", "")
        assert r.exit_code == 2 and "field '--into'" in said and "bundled catalog folder" in said, r.output
    finally:
        changed = [f for f, b in before.items() if (REPO / "profiles" / f).read_bytes() != b]
        for f in changed:  # the old code rewrites them: put them back for the other tests
            (REPO / "profiles" / f).write_bytes(before[f])
    assert not changed, changed


def test_a_bundled_name_is_said_to_replace_the_bundled_model(tmp_path):
    """Importing under a bundled model's name shadows it with that catalog folder (and its bundled profiles were measured
    on the bundled model): the import says so; another name does not."""
    cfg = str(BYO / "mistral-nemo-12b.config.json")
    r = runner.invoke(app, ["catalog", "import-hf", cfg, "--name", "llama-3.1-8b", "--into", str(tmp_path / "a")])
    assert r.exit_code == 0 and "'llama-3.1-8b' is a bundled model" in r.output.replace("\n", "")
    r = runner.invoke(app, ["catalog", "import-hf", cfg, "--name", "my-nemo", "--into", str(tmp_path / "b")])
    assert r.exit_code == 0 and "bundled model" not in r.output


def test_the_committed_example_catalog_is_what_import_writes(tmp_path):
    """examples/byo-model/catalog (used by profiles/gpu_session.py plans s12-s14) is the import of its four configs."""
    for m in ("mixtral-8x7b", "mistral-nemo-12b", "qwen2.5-14b", "qwen1.5-moe-a2.7b"):
        assert _import(tmp_path, m).exit_code == 0
    for f in ("models.yaml", "model_configs.yaml"):
        ours = yaml.safe_load((tmp_path / f).read_text())
        committed = yaml.safe_load((BYO / "catalog" / f).read_text())
        for m in ours:
            ours[m].pop("hf_id", None)
            committed[m].pop("hf_id", None)
        assert ours == committed, f


def test_profiles_in_the_catalog_folder_are_the_models_measured_laws(tmp_path, monkeypatch):
    """A profile under DIR/profiles/ (the profiles/data layout; here the real vLLM profile of mistral-nemo-12b, s12)
    makes that variant measured, with the bundled profiles still there and in the prior's calibration."""
    from planner.perf.laws import PerfModel

    cat = tmp_path / "cat"
    assert _import(cat, "mistral-nemo-12b").exit_code == 0
    monkeypatch.setenv("PLANNER_CATALOG", str(cat))
    assert PerfModel.load().get("mistral-nemo-12b", "H200-141GB", 1).law_source == "prior"
    src = REPO / "profiles" / "runs" / "2026-12-03-s12" / "mistral-nemo-12b" / "H200-141GB" / "tp1" / "vllm"
    dst = cat / "profiles" / "mistral-nemo-12b" / "H200-141GB" / "tp1" / "vllm"
    dst.mkdir(parents=True)
    for f in ("meta.yaml", "prefill.csv", "decode.csv"):
        (dst / f).write_text((src / f).read_text())
    pm = PerfModel.load()
    nemo = pm.get("mistral-nemo-12b", "H200-141GB", 1)
    assert nemo.law_source == "measured-vllm" and nemo.decode_step_ms(1, 2048) == pytest.approx(7.29, rel=0.05)
    assert pm.is_measured("llama-3.1-8b", "H200-141GB", 1)  # the bundled profiles stay
    assert "mistral-nemo-12b" in pm.efficiency.source  # and the user's profile joins the prior's calibration


def test_a_gpu_type_of_the_catalog_folder_is_planned_on(tmp_path):
    """A GPU nobody catalogued (an H20-like part: 96 GB at 4.0 TB/s, 148 dense bf16 TFLOP/s, an illustrative price)
    in the folder's gpus.yaml is a fleet's GPU type like a bundled one, planned with the prior; without the folder the
    fleet is exit 2 naming the GPU and how to add it."""
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "gpus.yaml").write_text(yaml.safe_dump({"H20-96GB": {
        "vendor": "nvidia", "memory_gib": 95.0, "hbm_tb_s": 4.0, "bf16_tflops": 148.0, "fp8_tflops": 296.0,
        "intra_link_gb_s": 450.0, "kv_link_gb_s": 50.0, "gpus_per_node": 8, "price_per_hour": 1.5, "power_w": 400}}))
    wl = tmp_path / "w.yaml"
    wl.write_text(yaml.safe_dump({"models": {"llama-3.1-8b": {"slo": {"ttft_ms": 1000, "itl_ms": 40, "percentile": 90}}},
                                  "classes": [{"id": "c", "model": "llama-3.1-8b", "isl": 1024, "osl": 128, "rate_rps": 5}]}))
    fl = tmp_path / "f.yaml"
    fl.write_text(yaml.safe_dump({"gpus": {"H20-96GB": {"available": 8}}, "limits": {"allowed_tp": [1]}}))
    r = runner.invoke(app, ["solve", "-w", str(wl), "-f", str(fl)])
    assert r.exit_code == 2 and "H20-96GB" in r.output and "gpus.yaml" in r.output
    out = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["--catalog", str(cat), "solve", "-w", str(wl), "-f", str(fl), "-o", str(out)])
    assert r.exit_code == 0, r.output
    pools = yaml.safe_load(out.read_text())["models"]["llama-3.1-8b"]["pools"]
    assert pools and {p["gpu"] for p in pools} == {"H20-96GB"}


def test_a_catalog_folder_of_profiles_alone_is_one(tmp_path, monkeypatch):
    """Found in QA: a folder holding only profiles/ (a bundled model measured on a bundled GPU needs no YAML; README's
    catalog folder holds "your measured profiles under DIR/profiles/") was refused, `planner --catalog DIR` exit 2.
    Now its profile replaces the bundled one of the variant; a folder holding none of the catalog's files is still
    refused."""
    from planner.perf.laws import PerfModel

    src = REPO / "profiles" / "data" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1" / "vllm"
    dst = tmp_path / "cat" / "profiles" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1" / "vllm"
    dst.mkdir(parents=True)
    for f in ("meta.yaml", "prefill.csv", "decode.csv"):
        (dst / f).write_text((src / f).read_text())
    assert runner.invoke(app, ["--catalog", str(tmp_path / "cat"), "catalog", "list"]).exit_code == 0
    monkeypatch.setenv("PLANNER_CATALOG", str(tmp_path / "cat"))
    assert PerfModel.load().get("llama-3.1-8b", "H100-SXM-80GB", 1).law_source == "measured-vllm"
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["--catalog", str(tmp_path / "empty"), "catalog", "list"])
    assert r.exit_code == 2 and "profiles/ folder" in r.output


@pytest.mark.parametrize("name, ok", [
    ("llama-3.1-8b", True), ("qwen2.5_7b", True), ("m", True), ("x" * 63, True),
    ("a:b", False), ("a,b", False), ("modèle", False), ("-x", False), ("x-", False), ("x" * 64, False),
    ("Mixtral", False), ("a b", False), ("a/b", False), ("", False),
])
def test_an_imported_name_is_a_kubernetes_label_value(tmp_path, name, ok):
    """Found in QA at stop 58: 'a:b', 'a,b', 'modèle', '-x' and an 80-character name were imported, though the name is
    part of pool ids, of the controller's label values (at most 63 of [A-Za-z0-9._-], alphanumeric at both ends) and of
    comma-list options; now exit 2 naming --name before anything is written."""
    into = tmp_path / "o"
    r = runner.invoke(app, ["catalog", "import-hf", str(BYO / "mixtral-8x7b.config.json"), "--name", name,
                            "--into", str(into)])
    if ok:
        assert r.exit_code == 0, r.output
    else:
        assert r.exit_code == 2 and "--name" in r.output and "Traceback" not in r.output, r.output
        assert not into.exists()


def test_import_keeps_the_folders_other_entries_and_refuses_an_invalid_one(tmp_path):
    """Found in QA at stop 58: an import re-dumped the folder's files, dropping every other entry's comments, and into a
    folder holding an invalid entry it wrote, then failed on use. Now the other entries' lines are kept as they are
    (the imported entry added, or replaced in place with --force), and an invalid entry is exit 2 naming its file and
    field before anything is written."""
    into = tmp_path / "cat"

    def imp(config: str, name: str, *more: str):
        return runner.invoke(app, ["catalog", "import-hf", str(BYO / f"{config}.config.json"), "--name", name,
                                   "--into", str(into), *more])

    assert imp("mixtral-8x7b", "mixtral").exit_code == 0
    models = into / "models.yaml"
    models.write_text(models.read_text().replace("mixtral:\n", "mixtral:  # our comment\n"))
    for args in (("qwen2.5-14b", "qwen"), ("qwen2.5-14b", "qwen", "--force"), ("mixtral-8x7b", "mixtral", "--force")):
        r = imp(*args)
        assert r.exit_code == 0, r.output
        assert "qwen" not in args[1] or "# our comment" in models.read_text(), args
    assert list(yaml.safe_load(models.read_text())) == ["mixtral", "qwen"]
    assert Catalog.load(models_path=models).model("qwen").layers == 48
    for bad, field in (("  layers: 32\n", "mixtral.layers"),):
        models.write_text(models.read_text().replace(bad, "  layers: 0\n", 1))
        before = {f: (into / f).read_text() for f in ("models.yaml", "model_configs.yaml")}
        r = imp("mistral-nemo-12b", "nemo")
        said = " ".join(r.output.split())
        assert r.exit_code == 2 and str(models) in said and field in said, r.output
        assert {f: (into / f).read_text() for f in before} == before


# Llama-3.1-8B's config.json (meta-llama/Llama-3.1-8B), its sizing keys written by hand: 8.03 B parameters.
LLAMA_31_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
               "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
               "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072, "tie_word_embeddings": False,
               "torch_dtype": "bfloat16", "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "hidden_act": "silu",
               "bos_token_id": 128000, "eos_token_id": 128001,
               "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"}}


def test_import_hf_prints_the_weights_at_bf16_and_fp8(tmp_path):
    """Found in QA: import-hf printed parameters, KV per token and context, not the weights. Now the weights as the
    planner sizes memory (ModelSpec.weight_bytes): Llama-3.1-8B's 8.03 B parameters x 2 B = 14.96 GiB at bf16 (its
    safetensors are 16.1 GB, ~15 GiB); at fp8 6.98 G linear x 1 B + 1.05 G embedding x 2 B = 8.46 GiB
    (ModelSpec.with_precision's check: vLLM 0.26 loads 8.54 GiB)."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA_31_8B))
    r = runner.invoke(app, ["catalog", "import-hf", str(cfg), "--name", "my-llama", "--into", str(tmp_path / "cat")])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "8.03 B parameters" in said, said
    assert "weights 14.96 GiB at bf16, 8.46 GiB at fp8" in said, said
    spec = Catalog.load(models_path=tmp_path / "cat" / "models.yaml").model("my-llama")
    assert spec.weight_bytes / 2**30 == pytest.approx(14.96, abs=0.005)  # the figure printed is the planner's


@pytest.mark.parametrize("scaling, context", [
    ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}, 131072),  # Qwen2.5-7B-Instruct's card
    ({"rope_type": "linear", "factor": 2.0}, 65536),
    ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}, 32768),  # already the extended
])
def test_rope_scaling_extends_the_context_as_vllm_derives_it(scaling, context):
    """vLLM's max_model_len is max_position_embeddings x the RoPE factor (YaRN: original_max_position_embeddings x
    factor; llama3's is already the extended one): the catalog's context is what vLLM serves, the weightless folder's
    max_position_embeddings the config's own."""
    cfg = dict(_cfg("qwen2.5-14b"), max_position_embeddings=32768, rope_scaling=scaling)
    im = from_hf_config(cfg, "q", "q.json")
    assert im.spec.max_context == context and im.facts["max_position_embeddings"] == 32768
    assert any(f"context {context} tokens" in n for n in im.notes) == (context != 32768)


def test_a_rope_factor_that_is_not_a_positive_number_is_refused_naming_it():
    cfg = dict(_cfg("qwen2.5-14b"), rope_scaling={"type": "yarn", "factor": "four"})
    assert _refused(cfg).field == "rope_scaling.factor"


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of the Rich tables in `text`, as their cells' text."""
    return [[c.strip() for c in ln.strip().strip("│").split("│")] for ln in text.splitlines() if ln.strip().startswith("│")]


def test_catalog_show_of_a_model_prints_the_sizes_catalog_list_and_the_planner_use():
    """Found in QA: `planner catalog` had list and import-hf, no way to see one entry in full. `catalog show MODEL` (any
    case) prints the architecture and ModelSpec's own numbers (catalog list's and import-hf's): parameters, KV bytes per
    token at bf16 and at fp8 (with_precision), the weights (weights_gib), the context."""
    from planner.cli.catalog import weights_gib

    s = Catalog.load().model("qwen3-30b-a3b")
    r = runner.invoke(app, ["catalog", "show", "Qwen3-30B-A3B"])
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert f"{s.layers} layers, hidden {s.hidden}, {s.heads} heads / {s.kv_heads} KV heads of head_dim {s.head_dim}" in said
    assert s.moe is not None and f"MoE {s.moe.experts} experts of {s.moe.expert_intermediate}, top-{s.moe.experts_per_token}" in said
    assert f"parameters: {s.params / 1e9:.2f} B ({s.active_params / 1e9:.2f} B active)" in said
    kv8 = s.with_precision("bf16", "fp8").kv_bytes_per_token
    assert kv8 * 2 == s.kv_bytes_per_token  # one byte per KV element instead of two
    assert f"KV cache per token: {s.kv_bytes_per_token:,} B" in said and f"{kv8:,} B ({kv8 / 1024:.0f} KiB) at fp8" in said
    assert f"weights: {weights_gib(s)}" in said and f"context: {s.max_context:,} tokens" in said


def test_catalog_show_lists_the_measured_variants_as_the_planner_loads_them():
    """The laws column of every variant is the planner's (PerfModel.get): the vLLM profile where one is (the torch
    reference beside it named), the prior elsewhere, 'cannot run' where run_blocker says so; a GPU type lists exactly
    the profiled variants of profiles/data on it."""
    from planner.perf.laws import PerfModel
    from planner.perf.profiledata import iter_profiles

    rows = _table_rows(runner.invoke(app, ["catalog", "show", "llama-3.1-8b"]).output)
    by = {(g, tp): cells for g, tp, *cells in rows}
    assert by[("H100-SXM-80GB", "1")] == ["measured-vllm (also measured-torch)", "measured-vllm", "measured-vllm", "prior"]
    assert by[("B200", "1, 2, 4, 8")] == ["prior"] * 4
    rows = _table_rows(runner.invoke(app, ["catalog", "show", "llama-2-70b"]).output)
    by = {(g, tp): cells for g, tp, *cells in rows}
    # 128.5 GiB of bf16 weights on one 80 GiB card; the Splitwise data set measured tp2, 4, 8
    assert by[("A100-80GB", "1")][0] == "cannot run (memory)" and by[("A100-80GB", "2, 4, 8")][0] == "splitwise"

    r = runner.invoke(app, ["catalog", "show", "h200-141gb"])
    assert r.exit_code == 0, r.output
    shown = {(m, int(tp), w, kv) for m, tp, w, kv, _ in _table_rows(r.output)}
    present = {(p.meta.model, p.meta.tp, p.meta.weight_dtype, p.meta.kv_dtype)
               for p in iter_profiles(REPO / "profiles" / "data") if p.meta.gpu == "H200-141GB"}
    assert shown == present and present
    pm = PerfModel.load()
    assert all(laws.startswith(pm.get(m, "H200-141GB", int(tp), w, kv).law_source)  # type: ignore[union-attr]
               for m, tp, w, kv, laws in _table_rows(r.output))
    said = " ".join(runner.invoke(app, ["catalog", "show", "L4"]).output.split())
    assert "profiles: none" in said and "power: 72 W" in said


def test_catalog_show_of_an_unknown_name_is_exit_2_with_the_closest_names():
    r = runner.invoke(app, ["catalog", "show", "llama3-8b"])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "unknown model or GPU type 'llama3-8b' (did you mean 'llama-3.1-8b'?)" in said, said
    assert "H100-SXM-80GB" in said and "Traceback" not in said


def test_catalog_show_reads_the_catalog_folder(tmp_path):
    """A model import-hf wrote is shown with --catalog (from the catalog folder, the planner's prior for its laws), and
    is unknown without it."""
    cat = tmp_path / "cat"
    assert _import(cat, "mixtral-8x7b").exit_code == 0
    assert runner.invoke(app, ["catalog", "show", "mixtral-8x7b"]).exit_code == 2
    r = runner.invoke(app, ["--catalog", str(cat), "catalog", "show", "mixtral-8x7b"])
    said = " ".join(r.output.split())
    s = Catalog.load(models_path=cat / "models.yaml").model("mixtral-8x7b")
    assert r.exit_code == 0 and "mixtral-8x7b (catalog folder" in said, said
    assert f"parameters: {s.params / 1e9:.2f} B ({s.active_params / 1e9:.2f} B active)" in said
    assert {cells[0] for _, _, *cells in _table_rows(r.output)} <= {"prior", "cannot run (memory)"}
