"""Pretrain a tiny Llama on the toy corpus of a `ToyRecipe`.

The model is a `LlamaForCausalLM` (by default hidden 128, 2 layers, 4 heads, MLP 256, tied embeddings,
64 positions: about 0.34M parameters). Training draws a fresh synthetic batch every step, uses AdamW
with linear warm-up then cosine decay to zero, runs on one CPU thread and is deterministic given the
recipe's seed. Departure from the paper: the paper starts from real pretrained LLMs; here pretraining
is the alignment dial itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, get_cosine_schedule_with_warmup

from .corpus import make_batch
from .presets import ToyRecipe
from .tokenizer import BOS, EOS, PAD, TOKEN_ID, VOCAB


def model_config(recipe: ToyRecipe) -> LlamaConfig:
    """The tiny Llama's config for a recipe."""
    return LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
        bos_token_id=TOKEN_ID[BOS],
        eos_token_id=TOKEN_ID[EOS],
        pad_token_id=TOKEN_ID[PAD],
    )


def init_model(recipe: ToyRecipe) -> LlamaForCausalLM:
    """A freshly initialised model, seeded by the recipe."""
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(model_config(recipe))
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = TOKEN_ID[BOS], TOKEN_ID[EOS], TOKEN_ID[PAD]
    return model


def train(
    recipe: ToyRecipe,
    model: LlamaForCausalLM | None = None,
    progress: bool = True,
    desc: str = "toy pretrain",
    on_step: Callable[[int, int], None] | None = None,
) -> LlamaForCausalLM:
    """Pretrain (a fresh model, or continue `model`) for `recipe.steps` steps; returns it in eval mode.
    `on_step(done, total)`, when given, is called after every optimizer step (a study's progress line)."""
    torch.set_num_threads(1)
    model = model if model is not None else init_model(recipe)
    rng = random.Random(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.98))
    sched = get_cosine_schedule_with_warmup(opt, recipe.warmup_steps, recipe.steps)
    model.train()
    bar = tqdm(range(recipe.steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        loss = model(**make_batch(recipe, rng)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(step + 1, recipe.steps)
    return model.eval()
