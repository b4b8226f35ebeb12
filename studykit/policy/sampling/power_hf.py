"""The hf model behind power sampling (studykit.policy.sampling.power): proposals through `HFSampler.continue_ids`
at T/alpha, each then scored by one teacher-forced forward pass of the policy model (the sampler's own log-probs are
at one temperature, and the MH ratio needs both).

Scoring: rows are left-padded with explicit position ids (so a row's positions do not depend on its padding), and
only the logits of the scored positions are kept (`logits_to_keep`); a pass holds at most `LOGIT_ELEMENTS` of them
(fewer rows per pass for long suffixes and large vocabularies, at least one row).
Per token it returns log_softmax(logits / T) (the base model p) and log_softmax(logits * alpha / T) (the proposal q
at temperature T/alpha), both in float32 from the same logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from studykit.policy.sampling.hf import _left_pad


LOGIT_ELEMENTS = 2**28
"""Logits (rows x scored positions x vocabulary) one scoring pass may hold: 1 GiB in float32 (studykit's choice)."""


class HFPowerModel:
    """`PowerModel` over an `HFSampler` (its live model, tokenizer, eos ids, batch size, autocast and seeding)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    @property
    def eos(self) -> list[int]:
        return self.sampler.eos

    def sync(self, policy: Any) -> None:
        """Nothing: its sampler is the power sampler's base, which the power sampler syncs."""

    def budget(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        return self.sampler._budget(prompt_ids, max_new_tokens)

    def propose(self, rows: list[list[int]], caps: list[int], temperature: float, alpha: float, seed: int | None
                ) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """Continuations at temperature / alpha (`HFSampler.continue_ids`), then one scoring pass of them."""
        new = self.sampler.continue_ids(rows, caps, temperature / alpha, seed)
        scored = self.score([r + s for r, s in zip(rows, new)], [len(s) for s in new], temperature, alpha)
        return [(s, lp, lq) for s, (lp, lq) in zip(new, scored)]

    def score(self, rows: list[list[int]], lengths: list[int], temperature: float, alpha: float
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(log p, log q) of the last `lengths[i]` tokens of each row (each >= 0 and shorter than the row)."""
        if any(not 0 <= n < len(r) for r, n in zip(rows, lengths)):
            raise ValueError("score: expected 0 <= length < len(row) for every row (the first token has no logit)")
        s = self.sampler
        model = s.model
        device = next(model.parameters()).device
        out: list[tuple[np.ndarray, np.ndarray]] = []
        was_training = model.training
        model.eval()
        try:
            vocab = int(getattr(model.config, "vocab_size", 0) or 1)
            with torch.inference_mode(), s._autocast():
                start = 0
                while start < len(rows):
                    keep = max(lengths[start:start + s.max_batch]) + 1
                    step = max(1, min(s.max_batch, LOGIT_ELEMENTS // (keep * vocab)))
                    out += self._score_chunk(rows[start:start + step], lengths[start:start + step], temperature,
                                             alpha, device)
                    start += step
        finally:
            model.train(was_training)
        return out

    def _score_chunk(self, rows: list[list[int]], lengths: list[int], temperature: float, alpha: float,
                     device: torch.device) -> list[tuple[np.ndarray, np.ndarray]]:
        keep = max(lengths)
        if keep == 0:
            return [(np.zeros(0), np.zeros(0)) for _ in rows]
        ids, mask = _left_pad(rows, self.sampler.pad, device)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        logits = self.sampler.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                                    logits_to_keep=keep + 1).logits[:, :-1].float()  # predicts the last `keep` ids
        targets = ids[:, -keep:].unsqueeze(-1)
        logp = torch.log_softmax(logits / temperature, -1).gather(-1, targets).squeeze(-1).cpu().numpy()
        logq = torch.log_softmax(logits * (alpha / temperature), -1).gather(-1, targets).squeeze(-1).cpu().numpy()
        return [(logp[i, keep - n:].astype(np.float64), logq[i, keep - n:].astype(np.float64))
                for i, n in enumerate(lengths)]
