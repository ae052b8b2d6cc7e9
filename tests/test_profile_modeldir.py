"""profiles.modeldir: the weightless model folder `planner profile --dummy-weights` hands to vLLM."""

from __future__ import annotations

import json

import pytest

from planner.io.catalog import Catalog
from planner.io.errors import InputError
from profiles.modeldir import hf_config, load_serving_facts, word_level_tokenizer, write_model_dir


@pytest.mark.parametrize("model", sorted(Catalog.load().models))
def test_every_catalog_model_has_serving_facts_and_a_consistent_config(model):
    spec = Catalog.load().model(model)
    facts = load_serving_facts(model)
    cfg = hf_config(spec, facts)
    assert cfg["num_attention_heads"] % cfg["num_key_value_heads"] == 0
    assert cfg["vocab_size"] == spec.vocab and cfg["max_position_embeddings"] >= 4096
    assert facts.bos_token_id < spec.vocab and facts.eos_token_id < spec.vocab
    assert ("num_experts" in cfg) == (spec.moe is not None)


def test_llama_config_has_the_llama3_rope():
    cfg = hf_config(Catalog.load().model("llama-3.1-8b"), load_serving_facts("llama-3.1-8b"))
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["rope_theta"] == 500000.0
    assert cfg["rope_scaling"]["rope_type"] == "llama3" and cfg["rope_scaling"]["factor"] == 8.0
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["num_key_value_heads"]) == (4096, 14336, 32, 8)


def test_tokenizer_covers_every_id_once_with_special_bos_eos(tmp_path):
    facts = load_serving_facts("llama-2-70b")  # bos 1, eos 2: the low ids
    tok = word_level_tokenizer(32000, facts)
    vocab = tok["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(32000))
    assert vocab["<|bos|>"] == 1 and vocab["<|eos|>"] == 2 and vocab[tok["model"]["unk_token"]] == 0
    d = write_model_dir(Catalog.load().model("llama-2-70b"), tmp_path / "m", facts)
    assert json.loads((d / "tokenizer_config.json").read_text())["eos_token"] == "<|eos|>"
    assert json.loads((d / "config.json").read_text())["max_position_embeddings"] == 4096


def test_a_model_without_serving_facts_is_a_named_input_error(tmp_path):
    p = tmp_path / "facts.yaml"
    p.write_text("other: {architecture: X}\n")
    with pytest.raises(InputError, match="no serving facts for model 'llama-3.1-8b'"):
        load_serving_facts("llama-3.1-8b", p)
    p.write_text("llama-3.1-8b: {architecture: X}\n")
    with pytest.raises(InputError, match="model_type"):
        load_serving_facts("llama-3.1-8b", p)
