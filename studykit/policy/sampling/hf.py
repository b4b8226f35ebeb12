"""HF backend: batched `model.generate` on the live training model, with per-token log-probs.

Each prompt is repeated n times and the rows are generated in chunks of at most `max_batch`, left-padded.
Sampling uses only temperature and top-p (top-k is switched off and the model's own generation_config
penalties are overridden with neutral values), or argmax when temperature == 0.

Log-probs: a final logits processor (`_LogprobRecorder`) sees the scores after the temperature and top-p
warpers, keeps their log-softmax for one step, and gathers it at the token sampled from them. Memory stays
O(batch x vocab) rather than the O(batch x steps x vocab) of `output_scores=True`, which matters for
150k-token vocabularies. Top-p renormalisation is included (see studykit.policy.sampling's docstring).

Length: like vLLM (max_model_len), a completion stops at the model's context length (max_position_embeddings)
even when max_new_tokens asks for more; it is then flagged truncated.

Seeding: with `seed`, the torch RNG is forked and seeded, so the same seed (and the same `max_batch`) gives the
same samples and the caller's global RNG stream is left untouched. Departure from the paper: verl samples
with vLLM; this backend is the portable reference the vLLM backend is tested against.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from studykit.policy.sampling.base import Group, check_generate_args, prompt_token_ids


class _LogprobRecorder(LogitsProcessor):
    """Last logits processor: records log p(sampled token) from the final (warped) scores of each step."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self._pending: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._pending is not None:  # the token chosen at the previous step is now the last input id
            self.steps.append(self._pending.gather(1, input_ids[:, -1:]).squeeze(1))
        self._pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """[B, L] log-probs of the generated tokens `new_tokens` [B, L]."""
        length = new_tokens.shape[1]
        steps = self.steps[:length]  # generate may run (and then undo) extra steps
        if len(steps) < length:
            assert self._pending is not None and len(steps) == length - 1
            steps.append(self._pending.gather(1, new_tokens[:, -1:]).squeeze(1))
        self._pending = None
        return torch.stack(steps, dim=1) if steps else new_tokens.new_zeros(new_tokens.shape, dtype=torch.float)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.update(int(i) for i in (gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]))
    if not ids:
        raise ValueError("tokenizer: expected an eos_token_id (the sampler stops completions at eos)")
    return sorted(ids)


def _neutral_config(do_sample: bool, max_new_tokens: int, eos: list[int], pad: int) -> GenerationConfig:
    """Explicit neutral values so a checkpoint's generation_config.json (repetition penalty, top-k ...)
    cannot change the sampling distribution behind the log-probs."""
    warpers = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0)
    return GenerationConfig(
        do_sample=do_sample, max_new_tokens=max_new_tokens, min_length=0, repetition_penalty=1.0,
        no_repeat_ngram_size=0, num_beams=1, eos_token_id=eos, pad_token_id=pad, use_cache=True,
        return_dict_in_generate=True, renormalize_logits=False, **(warpers if do_sample else {}),
    )


def _left_pad(rows: list[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


class HFSampler:
    """`Sampler` over a transformers causal LM (plain or peft-wrapped). Options: `max_batch` rows per generate."""

    def __init__(self, policy: Any, max_batch: int = 128) -> None:
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch: expected an integer >= 1, got {max_batch!r}")
        self.max_batch = max_batch
        self.sync(policy)

    def sync(self, policy: Any) -> None:
        """Point at the policy's (shared, live) model; nothing to copy."""
        for name in ("model", "tokenizer"):
            if getattr(policy, name, None) is None:
                raise ValueError(f"policy.{name}: expected a loaded {name}, got None")
        self.model, self.tokenizer = policy.model, policy.tokenizer
        self._autocast = getattr(policy, "autocast", contextlib.nullcontext)  # bf16 full fine-tune: as it trains
        self.eos = _eos_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad = int(pad) if pad is not None else self.eos[0]
        self.model.eval()

    def close(self) -> None:
        """Nothing to release (the model belongs to the policy)."""

    def sleep(self) -> None:
        """Nothing to free: the sampler is the training model."""

    def wake_up(self) -> None:
        """Nothing to restore."""

    def generate(self, prompts: list[str], n: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int | None = None) -> list[Group]:
        check_generate_args(prompts, n, temperature, top_p, max_new_tokens)
        groups = [Group(prompt=p, prompt_ids=prompt_token_ids(self.tokenizer, p)) for p in prompts]
        caps = [self._budget(g.prompt_ids, max_new_tokens) for g in groups]
        rows = [gi for gi in range(len(groups)) for _ in range(n)]
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            with self._seeded(seed, device), torch.inference_mode(), self._autocast():
                for start in range(0, len(rows), self.max_batch):
                    chunk = rows[start:start + self.max_batch]
                    ids, lps = self._generate_chunk([groups[g].prompt_ids for g in chunk], temperature, top_p,
                                                    max(caps[g] for g in chunk), device)
                    for g, row_ids, row_lps in zip(chunk, ids, lps):
                        self._append(groups[g], row_ids[:caps[g]], row_lps[:caps[g]])
        finally:
            self.model.train(was_training)
        return groups

    def _budget(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        """New tokens allowed after this prompt: like vLLM, stop at the model's context length."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        if context is None:
            return max_new_tokens
        if len(prompt_ids) >= context:
            raise ValueError(f"prompt has {len(prompt_ids)} tokens; the model's context (max_position_embeddings) "
                             f"is {context}, so nothing can be generated")
        return min(max_new_tokens, context - len(prompt_ids))

    @staticmethod
    @contextlib.contextmanager
    def _seeded(seed: int | None, device: torch.device):
        if seed is None:
            yield
            return
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            yield

    def _generate_chunk(self, prompt_rows: list[list[int]], temperature: float, top_p: float,
                        max_new_tokens: int, device: torch.device) -> tuple[list[list[int]], list[list[float]]]:
        input_ids, mask = _left_pad(prompt_rows, self.pad, device)
        do_sample = temperature > 0
        processors = LogitsProcessorList()
        if do_sample and temperature != 1.0:
            processors.append(TemperatureLogitsWarper(float(temperature)))
        if do_sample and top_p < 1.0:
            processors.append(TopPLogitsWarper(float(top_p)))
        recorder = _LogprobRecorder()
        processors.append(recorder)
        out = self.model.generate(input_ids=input_ids, attention_mask=mask, logits_processor=processors,
                                  generation_config=_neutral_config(do_sample, max_new_tokens, self.eos, self.pad))
        new = out.sequences[:, input_ids.shape[1]:]
        return new.tolist(), recorder.finish(new).tolist()

    def continue_ids(self, rows: list[list[int]], caps: list[int], temperature: float,
                     seed: int | None = None) -> list[list[int]]:
        """Sampled continuations of token rows (a prompt's ids plus a response so far) at `temperature`, top-p 1:
        at most `caps[i]` new ids for row i, ending after the first eos. Token level, so a response prefix is never
        re-tokenised (power sampling, studykit.policy.sampling.power, scores the ids itself)."""
        if len(rows) != len(caps) or any(not r for r in rows) or any(c < 1 for c in caps):
            raise ValueError("continue_ids: expected one non-empty row and one cap >= 1 per row")
        device = next(self.model.parameters()).device
        out: list[list[int]] = []
        was_training = self.model.training
        self.model.eval()
        try:
            with self._seeded(seed, device), torch.inference_mode(), self._autocast():
                for start in range(0, len(rows), self.max_batch):
                    chunk, chunk_caps = rows[start:start + self.max_batch], caps[start:start + self.max_batch]
                    ids, _ = self._generate_chunk(chunk, temperature, 1.0, max(chunk_caps), device)
                    out += [row[:self._cut(row[:cap])] for row, cap in zip(ids, chunk_caps)]
        finally:
            self.model.train(was_training)
        return out

    def _cut(self, ids: list[int]) -> int:
        """Length of `ids` up to and including the first eos (all of it when there is none)."""
        eos_at = next((i for i, t in enumerate(ids) if t in self.eos), None)
        return len(ids) if eos_at is None else eos_at + 1

    def _append(self, group: Group, ids: list[int], lps: list[float]) -> None:
        eos_at = next((i for i, t in enumerate(ids) if t in self.eos), None)
        cut = len(ids) if eos_at is None else eos_at + 1
        group.token_ids.append(ids[:cut])
        group.logprobs.append(lps[:cut])
        group.truncated.append(eos_at is None)
        group.texts.append(self.tokenizer.decode(ids[:cut], skip_special_tokens=True))
