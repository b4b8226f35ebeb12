"""Tests of the toy world: tokenizer, corpus, pretraining, cache, recipe validation, CLI arguments."""

from __future__ import annotations

import json
import random
import threading

import pytest
import torch

torch.set_num_threads(1)

from studykit.tasks import toy as toy_task  # noqa: E402
from studykit.toy import cache as toy_cache  # noqa: E402
from studykit.toy import ensure_built, load, recipe_for  # noqa: E402
from studykit.cli.toy import main as cli_main  # noqa: E402
from studykit.toy.corpus import (  # noqa: E402
    IGNORE, break_format, encode_example, make_batch, method_states, response_words, sample_example, slipped_sum,
)
from studykit.tasks.toy import method_of  # noqa: E402
from studykit.probes.toy_report import alignment_report  # noqa: E402
from studykit.scoring.verify import extract_answer as extract, format_ok  # noqa: E402
from studykit.toy.pretrain import init_model, train  # noqa: E402
from studykit.toy.tokenizer import BOS, TOKEN_ID, UNK, build_tokenizer  # noqa: E402

# A model small enough to build in well under a second.
TINY = dict(steps=3, batch_size=4, warmup_steps=0, hidden_size=16, num_heads=2, intermediate_size=16)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDYKIT_CACHE", str(tmp_path))
    return tmp_path / "toy"


@pytest.fixture
def build_counter(monkeypatch):
    calls = []
    real = toy_cache._write_entry

    def counting(*args, **kw):
        calls.append(args[1])
        return real(*args, **kw)

    monkeypatch.setattr(toy_cache, "_write_entry", counting)
    return calls


def _all_response_forms() -> list[str]:
    digits = (9, 8, 7, 9, 9)
    forms = [" ".join(response_words(m, method_states(digits, m))) for m in ("sum", "count", "max")]
    forms.append(" ".join(response_words("sum", slipped_sum(digits, 1.0, "random", random.Random(3)))))
    rng = random.Random(0)
    forms += [" ".join(break_format(response_words("sum", method_states(digits, "sum")), rng)) for _ in range(40)]
    return forms


def test_tokenizer_round_trips_every_response_form(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    for t in (tok, AutoTokenizer.from_pretrained(tmp_path)):
        for response in _all_response_forms():
            text = "Q 9 8 7 9 9 = " + response
            ids = t(text).input_ids
            assert ids[0] == TOKEN_ID[BOS] and TOKEN_ID[UNK] not in ids
            assert t.decode(ids, skip_special_tokens=True) == text
            assert t.decode(t(response, add_special_tokens=False).input_ids) == response
        assert t.padding_side == "left"
    assert len(set(_all_response_forms())) > 10  # the broken forms really vary


def test_tokenizer_left_pads_batches():
    tok = build_tokenizer()
    enc = tok(["Q 1 2 3 4 5 =", "Q 1 2 3 4 5 = <think>"], padding=True)
    assert enc.input_ids[0][0] == tok.pad_token_id and enc.attention_mask[0][0] == 0
    assert enc.input_ids[1][0] == tok.bos_token_id


def test_methods_and_slips():
    d = (3, 4, 5, 6, 7)
    assert method_states(d, "sum") == [3, 7, 12, 18, 25]
    assert method_states(d, "count") == [1, 2, 3, 4, 5]
    assert method_states((3, 9, 5, 6, 7), "max") == [3, 9, 9, 9, 9]
    assert slipped_sum(d, 1.0, "systematic", random.Random(0)) == [3, 8, 14, 21, 29]  # +1 per step, carried
    noisy = slipped_sum(d, 1.0, "random", random.Random(0))
    steps = [b - a - x for a, b, x in zip(noisy, noisy[1:], d[1:])]
    assert all(1 <= abs(s) <= 3 for s in steps)
    assert slipped_sum(d, 0.0, "random", random.Random(0)) == method_states(d, "sum")
    with pytest.raises(ValueError, match="unknown method"):
        method_states(d, "product")


def test_corpus_never_contains_a_held_out_prompt():
    rng = random.Random(1)
    recipe = recipe_for("weak-skill")
    seen = {toy_task.digits_of(sample_example(recipe, rng)[0]) for _ in range(30000)}
    assert len(seen) > 15000
    assert not any(toy_task.is_held_out(d) for d in seen)
    assert len(toy_task.held_out_pool()) == 512 and len(toy_task.test_pool()) == 256  # test + test_clean halves


def test_corpus_follows_the_recipe_mix_and_masks_the_prompt():
    rng = random.Random(0)
    recipe = recipe_for("weak-method")
    responses = [sample_example(recipe, rng)[1] for _ in range(4000)]
    shares = {m: sum(method_of(r) == m for r in responses) / len(responses) for m in ("sum", "count", "max")}
    assert abs(shares["count"] - 0.55) < 0.03 and shares["sum"] < 0.15  # ~2.5% lose <think>
    assert abs(sum(not format_ok(r) for r in responses) / len(responses) - 0.1) < 0.03
    ids, labels = encode_example("Q 1 2 3 4 5 =", "<think> sum 1 3 6 10 15 </think> <answer> 15 </answer>")
    assert labels[:8] == [IGNORE] * 8 and labels[8:] == ids[8:]
    batch = make_batch(recipe, random.Random(0), 8)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert ((batch["attention_mask"] == 0) <= (batch["labels"] == IGNORE)).all()


def test_shared_verifier_reads_toy_responses():
    good = "<think> sum 1 3 6 10 15 </think> <answer> 15 </answer>"
    assert format_ok(good) and extract(good) == "15" and method_of(good) == "sum"
    assert not format_ok("<think> sum 1 3 </think> 15 </answer>") and extract("15 </answer>") is None
    assert not format_ok("<think> sum <answer> 1 </think> <answer> 1 </answer>")
    assert method_of("hmm sum") == "other"


def test_default_model_size():
    n = sum(p.numel() for p in init_model(recipe_for("strong")).parameters())
    assert 300_000 < n < 380_000


def test_short_training_raises_format_rate():
    recipe = recipe_for("custom", steps=60, batch_size=32, warmup_steps=5, broken_format_rate=0.0, lr=3e-3)
    tok = build_tokenizer()
    model = init_model(recipe)
    before = alignment_report(model, tok, n_problems=16, n_samples=4)["format_rate"]
    after = alignment_report(train(recipe, model=model, progress=False), tok, n_problems=16, n_samples=4)
    assert before < 0.05 and after["format_rate"] > before + 0.3
    assert set(after) >= {"pass@1", "pass@4", "format_rate", "method_shares"} and "pass@16" not in after


def test_training_is_deterministic_from_the_seed():
    recipe = recipe_for("custom", **TINY)
    a, b = train(recipe, progress=False), train(recipe, progress=False)
    c = train(recipe_for("custom", **{**TINY, "seed": 1}), progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_cache_keys_and_reuse(cache, build_counter):
    first = ensure_built("custom", progress=False, **TINY)
    again = ensure_built("toy:custom", progress=False, **TINY)
    other = ensure_built("custom", progress=False, **{**TINY, "slip_rate": 0.2})
    assert first == again and first != other and build_counter == ["custom", "custom"]
    assert first.parent == cache and first.name.startswith("custom-") and len(first.name) == len("custom-") + 12
    info = json.loads((first / "recipe.json").read_text())
    assert info["recipe"]["steps"] == 3 and info["key"] == first.name[-12:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(first), AutoTokenizer.from_pretrained(first)
    assert model.config.tie_word_embeddings and tok.padding_side == "left"
    out = model.generate(**tok(["Q 1 2 3 4 5 ="], return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 11)  # <bos> + 7 prompt words + 3 new
    assert not list(cache.glob(".*tmp-*"))


@pytest.mark.parametrize("damage", ["truncate", "no_marker", "bad_json"])
def test_corrupted_entry_is_rebuilt_not_loaded(cache, build_counter, damage):
    folder = ensure_built("custom", progress=False, **TINY)
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(good[: len(good) // 2])
    elif damage == "no_marker":
        (folder / toy_cache.MARKER).unlink()
    else:
        (folder / "config.json").write_text("{not json")
    assert not toy_cache.is_valid(folder)
    model, _ = load("custom", progress=False, **TINY)
    assert build_counter == ["custom", "custom"]
    assert toy_cache.is_valid(folder) and weights.read_bytes() == good  # same seed, same weights
    assert model.config.hidden_size == 16


def test_parallel_builders_share_one_build(cache, build_counter):
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_built("custom", progress=False, **TINY)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1 and build_counter == ["custom"]


def test_custom_knobs_are_validated(cache):
    with pytest.raises(ValueError, match=r"must sum to 1.*0\.7"):
        ensure_built("custom", sum_share=0.5, count_share=0.1, max_share=0.1)
    with pytest.raises(ValueError, match="slip_kind"):
        recipe_for("custom", slip_kind="sometimes")
    with pytest.raises(ValueError, match="bogus"):
        recipe_for("strong", bogus=1)
    with pytest.raises(ValueError, match="num_heads"):
        recipe_for("custom", hidden_size=30, num_heads=4)
    with pytest.raises(KeyError, match="weak-method"):
        recipe_for("medium")
    assert not cache.exists() or not any(cache.iterdir())


def test_presets_differ_as_documented():
    strong, method, skill = (recipe_for(n) for n in ("strong", "weak-method", "weak-skill"))
    assert strong.sum_share == 0.5 and strong.slip_rate == 0
    assert method.count_share > method.sum_share and method.slip_kind == "random"
    assert skill.sum_share == 0.9 and skill.slip_kind == "systematic"
    assert len({strong.key(), method.key(), skill.key()}) == 3
    assert all(r.broken_format_rate == 0.1 for r in (strong, method, skill))


def test_cli_needs_a_name_or_all(capsys):
    assert cli_main(["toy", "build"]) == 2
    assert "NAME or --all" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["toy", "build", "medium"])


def test_toy_task_reports_method_shares_through_the_task_hook():
    from studykit.tasks import share_diagnostics
    from studykit.tasks import get as get_task

    texts = ["<think> sum 1 2 </think> <answer> 3 </answer>", "<think> max 2 </think>", "nonsense"]
    shares = share_diagnostics(get_task("toy"), texts, "train/")
    assert shares == {"train/method_share/sum": 1 / 3, "train/method_share/count": 0.0,
                      "train/method_share/max": 1 / 3, "train/method_share/recall": 0.0,
                      "train/method_share/other": 1 / 3}
    assert share_diagnostics(get_task("math500"), texts, "train/") == {}  # no hook: nothing logged
