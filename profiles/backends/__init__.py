"""Profiler backends: how one measurement point is taken.

- ``vllm``: a real (or emulated) vLLM server over its OpenAI-compatible HTTP API.
- ``torch_ref``: a reference decoder with a model's real shapes on a GPU, for machines where vLLM
  cannot be installed; its profiles say ``backend: torch`` in meta.yaml.

Both write the profile-directory format of DESIGN.md (meta.yaml, prefill.csv, decode.csv). This
package imports nothing heavy so that ``python -m profiles.backends.torch_ref`` needs only torch,
numpy and pyyaml.
"""

BACKENDS = ("vllm", "torch")
