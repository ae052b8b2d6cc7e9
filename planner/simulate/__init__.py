"""Fleet simulation: a discrete-event simulator of a plan, plan verification, and an emulated vLLM server."""
