"""The `generate` task of bench/worker.py: import a backend, load a checkpoint, time generation.

One runner per `impl`: "athena" (OLMoEModel, `backend` "mlx" or "transformers"), "mlx_lm" (raw
`mlx_lm.load` + `stream_generate`), "transformers" (raw `AutoModelForCausalLM` + `generate`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.common import mx_memory, peak_rss, reset_mx_peak, rss_bytes, torch_device


def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """Import, load, warm up, time `generate_repeats` greedy generations (the fastest counts),
    and report memory after each step (bench/README.md says what each figure takes)."""
    out: dict[str, Any] = {"impl": spec["impl"], "rss_start": rss_bytes()}
    start = time.perf_counter()
    runner = RUNNERS[spec["impl"]](spec)
    out["import_s"] = time.perf_counter() - start
    out.update(rss_after_import=rss_bytes(), peak_rss_after_import=peak_rss()[0])
    reset_mx_peak()

    start = time.perf_counter()
    runner.load()
    out["load_s"] = time.perf_counter() - start
    out.update(rss_after_load=rss_bytes(), peak_rss_after_load=peak_rss()[0])
    out.update(mx_peak_load=mx_memory("peak"), mx_active_after_load=mx_memory("active"))
    out["backend"] = runner.backend

    # The first call pays one-off costs (kernel set-up, lazy imports inside generate).
    runner.generate(spec.get("warmup_prompt", "Hello"), int(spec.get("warmup_tokens", 2)))
    calls = []
    for _ in range(int(spec.get("generate_repeats", 1))):
        start = time.perf_counter()
        timing = runner.generate(spec["prompt"], int(spec["max_tokens"]))
        calls.append((time.perf_counter() - start, start, timing))
    # The fastest call: on a shared machine slower calls carry interference (timeit's rule).
    e2e_s, start, timing = min(calls, key=lambda call: call[0])
    out.update(e2e_s=e2e_s, e2e_s_all=[call[0] for call in calls], **timing.fields(start))
    out["rss_end"] = rss_bytes()
    out["peak_rss"], out["peak_method"] = peak_rss()
    out["mx_peak"] = mx_memory("peak")
    return out


@dataclass
class Timing:
    """What one generation gave: its text, and per-token timestamps where the impl has them."""

    text: str
    stamps: list[float] | None
    prompt_tokens: int | None

    def fields(self, start: float) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "e2e_tokens": None}
        if self.stamps:
            out.update(
                e2e_tokens=len(self.stamps),
                prompt_tokens=self.prompt_tokens,
                prefill_s=self.stamps[0] - start,
                decode_tokens=len(self.stamps) - 1,
                decode_s=self.stamps[-1] - self.stamps[0],
            )
        return out


def import_backend(backend: str) -> None:
    """Import a backend and its OLMoE model code before load() is timed: transformers imports
    lazily, and its OLMoE module alone takes seconds, which would land in the first load()."""
    if backend == "mlx":
        import mlx.core  # noqa: F401
        import mlx_lm
        import mlx_lm.models.olmoe  # noqa: F401
    else:
        import torch  # noqa: F401
        import transformers
        import transformers.models.olmoe.modeling_olmoe

        transformers.AutoModelForCausalLM, transformers.AutoTokenizer  # noqa: B018


class MlxLm:
    """Raw mlx-lm: `mlx_lm.load` + `stream_generate` (greedy: its default sampler is argmax)."""

    backend = "mlx"

    def __init__(self, spec: dict[str, Any]) -> None:
        import_backend("mlx")
        import mlx_lm

        self.mlx_lm, self.path = mlx_lm, spec["model"]

    def load(self) -> None:
        self.model, self.tokenizer = self.mlx_lm.load(self.path)[:2]

    def generate(self, prompt: str, max_tokens: int) -> Timing:
        text, stamps, prompt_tokens = [], [], None
        for response in self.mlx_lm.stream_generate(
            self.model, self.tokenizer, prompt, max_tokens=max_tokens
        ):
            stamps.append(time.perf_counter())
            text.append(response.text)
            prompt_tokens = response.prompt_tokens
        return Timing("".join(text), stamps, prompt_tokens)


class Transformers:
    """Raw transformers: `AutoModelForCausalLM.from_pretrained` (float32) + greedy `generate`;
    a streamer's put() (a list append) stamps each token."""

    backend = "transformers"

    def __init__(self, spec: dict[str, Any]) -> None:
        import_backend("transformers")
        import torch
        import transformers

        self.torch, self.transformers, self.path = torch, transformers, spec["model"]
        self.device = torch_device()

    def load(self) -> None:
        t = self.transformers
        self.tokenizer = t.AutoTokenizer.from_pretrained(self.path)
        self.model = t.AutoModelForCausalLM.from_pretrained(
            self.path, dtype=self.torch.float32, use_safetensors=True
        ).to(self.device)
        self.model.eval()

    def generate(self, prompt: str, max_tokens: int) -> Timing:
        stamps: list[float] = []

        class Stamps(self.transformers.generation.streamers.BaseStreamer):  # type: ignore[name-defined]
            def put(self, value: Any) -> None:
                stamps.append(time.perf_counter())

            def end(self) -> None:
                pass

        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)
        pad = self.tokenizer.pad_token_id
        with self.torch.inference_mode():
            out = self.model.generate(
                ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=pad, streamer=Stamps()
            )
        text = self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        # put() is called once with the prompt, then once per new token.
        return Timing(text, stamps[1:], int(ids.shape[1]))


class Athena:
    """athena's `OLMoEModel.load()` + `generate()`; the backend's package is imported first
    (and timed as import), so load_s compares with the raw load alone."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.backend, self.path = spec["backend"], spec["model"]
        import_backend(self.backend)
        from athena.models.olmoe import OLMoEConfig, OLMoEModel

        fields: dict[str, Any] = {"model_name": self.path, "use_mlx": self.backend == "mlx"}
        fields["temperature"] = 0.0
        if self.backend == "mlx":
            fields["mlx_model_path"] = self.path
        if spec.get("quantize_bits"):
            fields["quantize_bits"] = int(spec["quantize_bits"])
        self.model = OLMoEModel(OLMoEConfig(**fields))

    def load(self) -> None:
        if not self.model.load():
            raise RuntimeError(f"OLMoEModel.load() returned False for {self.path}")
        if self.model.backend != self.backend:
            raise RuntimeError(f"asked for {self.backend}, athena loaded {self.model.backend}")

    def generate(self, prompt: str, max_tokens: int) -> Timing:
        text = self.model.generate(prompt, max_tokens=max_tokens, temperature=0.0)
        return Timing(text, None, None)


RUNNERS: dict[str, Any] = {"mlx_lm": MlxLm, "transformers": Transformers, "athena": Athena}
