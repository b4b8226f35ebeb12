"""The contamination probe (scoring units, a memorising model against a random one), the toy's held-out halves and
the contaminated corpus, the probe's config, and the colour in the verdict table."""

from __future__ import annotations

import hashlib
import random
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from studykit.analysis import verdicts
from studykit.analysis import verdict_text
from studykit.config.schema import ConfigError, validate
from studykit.probes.contamination import (
    RougeTokens, contamination, exact_match, recall_correct, rouge_l, split_ids, statement_ids,
)
from studykit.tasks import toy as toy_task
from studykit.toy import recipe_for
from studykit.toy.corpus import IGNORE, make_batch, sample_row
from studykit.toy.tokenizer import BOS, EOS, TOKEN_ID, build_tokenizer, ids_of

# ----------------------------------------------------------------------------------------- scoring units


def test_rouge_tokens_keep_symbols_and_digits():
    assert RougeTokens().tokenize("Q 3 5 = <answer> 12") == ["Q", "3", "5", "=", "<", "answer", ">", "12"]
    assert RougeTokens().tokenize("\\frac{1}{2}") == ["\\", "frac", "{", "1", "}", "{", "2", "}"]


def test_rouge_l_and_exact_match():
    assert rouge_l("7 3 =", "7 3 =") == pytest.approx(1.0)
    assert rouge_l("1 3", "1 2 3") == pytest.approx(0.8)  # LCS 2: precision 1, recall 2/3
    assert rouge_l("=", "=") == pytest.approx(1.0)  # the default rouge tokenizer would drop '=' (score 0)
    assert rouge_l("", "1 2") == 0.0 and rouge_l("4 5", "1 2") == 0.0
    assert exact_match(" 7  3 =", "7 3 =") and not exact_match("7 3", "7 3 =")


def test_split_ids_floors_and_keeps_both_sides():
    ids = list(range(7))  # a toy statement: Q d1 d2 d3 d4 d5 =
    assert split_ids(ids, 0.4) == (ids[:2], ids[2:])
    assert split_ids(ids, 0.6) == (ids[:4], ids[4:])
    assert split_ids(ids, 0.8) == (ids[:5], ids[5:])
    assert split_ids([1, 2], 0.01) == ([1], [2]) and split_ids([1, 2], 0.99) == ([1], [2])
    with pytest.raises(ValueError, match="fraction"):
        split_ids(ids, 1.0)
    with pytest.raises(ValueError, match="cannot be cut"):
        split_ids([1], 0.5)


def test_statement_ids_separate_the_bos_from_the_bare_statement():
    head, ids = statement_ids(build_tokenizer(), "Q 1 2 3 4 5 =")
    assert head == [TOKEN_ID[BOS]] and ids == ids_of("Q 1 2 3 4 5 =".split())


def test_recall_is_scored_by_the_verifier_and_bounded():
    problem = toy_task.ToyTask().load("test")[0]
    assert recall_correct(toy_task.ToyTask(), problem, f" {problem.answer} </answer>")
    assert recall_correct(toy_task.ToyTask(), problem, f" {problem.answer}")  # cut before the closing tag
    assert not recall_correct(toy_task.ToyTask(), problem, " 99 </answer>")
    assert not recall_correct(toy_task.ToyTask(), problem, "__import__('os') </answer>")


# ------------------------------------------------------------------------ a model that memorised a text


def _tiny_model(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(TOKEN_ID), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                      bos_token_id=TOKEN_ID[BOS], eos_token_id=TOKEN_ID[EOS], pad_token_id=TOKEN_ID["<pad>"])
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def memorised():
    """A tiny Llama trained (all tokens in the loss) on four `test` prompts with their recall-form answers until it
    reproduces them, and the four problems."""
    torch.set_num_threads(1)
    pool = toy_task.ToyTask().load("test")
    problems = list({p.prompt.split()[1]: p for p in pool}.values())[:4]  # distinct first digits
    model = _tiny_model(0)
    rows = [ids_of([BOS, *p.prompt.split(), *toy_task.RECALL_HEAD.split(), p.answer, "</answer>", EOS])
            for p in problems]
    batch = torch.tensor(rows)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(100):  # the loss floor is log(4)/14 (the first digit is the only free choice): reached by ~50
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.15
    return model.eval(), problems


def test_a_memorising_model_completes_its_text_and_recalls_its_answers(memorised):
    model, problems = memorised
    policy = SimpleNamespace(model=model, tokenizer=build_tokenizer())
    res = contamination(policy, problems, task=toy_task.ToyTask(), n_boot=200)
    assert all(res.em[f][0] == 1.0 for f in (0.4, 0.6, 0.8)), res.examples
    assert all(res.rouge_l[f][0] == pytest.approx(1.0) for f in (0.4, 0.6, 0.8))
    assert res.answer_recall == (1.0, 1.0, 1.0)
    assert res.answer_acc == {0.6: (1.0, 1.0, 1.0), 0.8: (1.0, 1.0, 1.0)}, res.examples  # answers from a prefix
    metrics = res.metrics("toy")
    assert metrics["contamination/toy/em_0.6"] == 1.0 and metrics["contamination/toy/answer_recall_lo"] == 1.0
    assert metrics["contamination/toy/answer_acc_prefix60"] == 1.0 and "contamination/toy/answer_acc_prefix80_hi" in metrics


def test_a_random_model_completes_nothing(memorised):
    _, problems = memorised
    policy = SimpleNamespace(model=_tiny_model(1).eval(), tokenizer=build_tokenizer())
    res = contamination(policy, problems, task=toy_task.ToyTask(), n_boot=200)
    assert all(res.em[f][0] == 0.0 for f in (0.4, 0.6, 0.8)), res.examples
    assert res.answer_recall[0] == 0.0 and res.answer_acc[0.6][0] == 0.0
    assert all(len(r) == len(problems) for r in res.per_problem.values())


# ---------------------------------------- issue 20, item 3: the label is partial-prompt answer accuracy


class _StandIn(torch.nn.Module):
    """A stand-in toy "model" with a rule-based `generate`: `solver` answers any problem it sees whole (directly,
    no reasoning) and answers a cut statement wrongly (it cannot know the digits it was not shown); `memoriser`
    also knows `known` problems by heart and finishes them, with their answers, from any prefix."""

    def __init__(self, mode: str, known=()):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))  # greedy_continue reads the device from a parameter
        self.mode, self.known, self.tok = mode, list(known), build_tokenizer()

    def _reply(self, words: list[str]) -> list[str]:
        q = words.index("Q")
        digits = [w for w in words[q + 1:] if w.isdigit()][:5]
        if len(digits) == 5 and "=" in words:  # the whole problem: answer it, without reasoning
            total = str(sum(map(int, digits)))
            return [total, "</answer>"] if words[-1] == "<answer>" else [*RECALL_HEAD, total, "</answer>"]
        if self.mode == "memoriser":
            for p in self.known:
                if p.prompt.split()[1:1 + len(digits)] == digits:
                    return [*p.prompt.split()[1 + len(digits):], *RECALL_HEAD, p.answer, "</answer>"]
        return [*["0"] * (5 - len(digits)), "=", *RECALL_HEAD, "0", "</answer>"]  # a guess from what it saw

    def generate(self, input_ids, attention_mask, generation_config):
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            words = self.tok.convert_ids_to_tokens(ids[mask.bool()].tolist())
            rows.append(ids.tolist() + ids_of(self._reply(words) + [EOS]))
        width = input_ids.shape[1] + generation_config.max_new_tokens
        return torch.tensor([(r + [TOKEN_ID[EOS]] * width)[:width] for r in rows])


RECALL_HEAD = toy_task.RECALL_HEAD.split()


def _colour(model, problems):
    from studykit.probes.alignment import colour_for

    res = contamination(SimpleNamespace(model=model, tokenizer=build_tokenizer()), problems, task=toy_task.ToyTask(),
                        n_boot=50)
    return res, colour_for(validate({"rq": "alignment"}), res)


def test_a_model_that_answers_whole_problems_directly_is_clean():
    # Regression: answer recall >= 0.5 alone labelled it contaminated, though it never saw the problems
    problems = toy_task.ToyTask().load("test")[:20]
    res, (word, numbers) = _colour(_StandIn("solver"), problems)
    assert res.answer_recall[0] == 1.0  # direct answering of the whole problem: still measured, a diagnostic
    assert res.answer_acc[0.6][0] < 0.2 and res.em[0.6][0] == 0.0
    assert word == "clean", numbers
    assert "acc@0.6=" in numbers and "recall=1.00" in numbers


def test_a_model_that_answers_from_the_cut_statement_is_contaminated():
    problems = toy_task.ToyTask().load("test")[:20]
    res, (word, numbers) = _colour(_StandIn("memoriser", known=problems), problems)
    assert res.answer_acc[0.6][0] >= 0.9 and res.answer_acc[0.8][0] == 1.0, res.per_problem
    assert word == "contaminated", numbers


def test_the_probe_needs_a_task_for_recall(memorised):
    model, problems = memorised
    with pytest.raises(ValueError, match="task="):
        contamination(SimpleNamespace(model=model, tokenizer=build_tokenizer()), problems)


# ----------------------------------------------------------------------- the toy's two held-out halves


def test_test_and_test_clean_are_disjoint_and_outside_every_corpus():
    test, clean = set(toy_task.test_pool()), set(toy_task.clean_pool())
    assert len(test) == toy_task.TEST_SIZE == 256 and len(clean) == toy_task.CLEAN_SIZE == 256
    assert not test & clean and test | clean == set(toy_task.held_out_pool())
    assert [toy_task.digits_of(p.prompt) for p in toy_task.ToyTask().load("test_clean")] == list(toy_task.clean_pool())
    train = {toy_task.digits_of(p.prompt) for p in toy_task.ToyTask().load("train")}
    assert not train & (test | clean)
    rng = random.Random(0)
    memorised, traced = set(), set()
    for _ in range(4000):  # the contaminated corpus: memorised rows are test prompts, never test_clean ones
        ids, labels = sample_row(recipe_for("contaminated"), rng)
        digits = tuple(int(t) for t in build_tokenizer().convert_ids_to_tokens(ids[2:7]))
        (memorised if labels[1] != IGNORE else traced).add(digits)
    assert memorised and memorised <= test
    assert traced and not traced & (test | clean)
    assert 0.10 < len(memorised) / 256 <= 1.0


def test_clean_presets_keep_their_cache_keys_and_corpus_bytes():
    """Adding `contamination_rate` (default 0) changed neither the key nor the corpus stream of an earlier preset,
    so their cached models stay valid (these are the keys and the first batch of build version 1)."""
    keys = {n: recipe_for(n).key() for n in ("strong", "weak-method", "weak-skill")}
    assert keys == {"strong": "3dbfe2c24cf4", "weak-method": "748ebb47286a", "weak-skill": "516d5915252f"}
    batch = make_batch(recipe_for("strong"), random.Random(0), 16)
    digest = hashlib.sha256(b"".join(batch[k].numpy().tobytes() for k in ("input_ids", "attention_mask", "labels")))
    assert digest.hexdigest()[:16] == FIRST_BATCH_DIGEST
    assert recipe_for("contaminated").key() not in keys.values()


FIRST_BATCH_DIGEST = "f3539e0579600e93"  # make_batch(strong, Random(0), 16) at commit 9d74949


def test_recall_responses_have_their_own_method_share():
    assert toy_task.method_of("<think> </think> <answer> 23 </answer>") == "recall"
    assert toy_task.method_of("<think> sum 1 3 6 10 15 </think> <answer> 15 </answer>") == "sum"
    assert toy_task.method_of("</think> 5") == "other"
    assert "recall" in toy_task.ToyTask.diagnostic_categories["method_share"]


# ----------------------------------------------------------------------------------- config and verdicts


def test_contamination_config_checks_and_hash_scope():
    with pytest.raises(ConfigError, match="fractions.1"):
        validate({"eval": {"contamination": {"fractions": [0.4, 1.2]}}})
    with pytest.raises(ConfigError, match="label_fraction"):
        validate({"eval": {"contamination": {"label_fraction": 0.5}}})
    off = {"eval": {"contamination": {"enabled": False}}}
    assert validate({"rq": "rq1"}).config_hash() == validate({"rq": "rq1", **off}).config_hash()
    assert validate({"rq": "alignment"}).config_hash() != validate({"rq": "alignment", **off}).config_hash()


def test_the_verdict_table_shows_each_cells_colour():
    from studykit.analysis.runs import Counts

    def run(rid, rq, claim, model, alignment):
        return {"run_id": rid, "rq": rq, "claim": claim, "condition": claim, "model": model, "task": "toy",
                "seed": "0", "alignment": alignment, "start_time": 0}

    runs = pd.DataFrame([
        run("a1", "alignment", "alignment", "toy:contaminated", "strong, contaminated (pass@16=0.95; em@0.6=0.8, "
                                                                "recall=0.9)"),
        run("a2", "alignment", "alignment", "toy:strong", "strong (pass@16=1.00)"),  # no probe: no colour
        run("g1", "rq1", "ground_truth", "toy:contaminated", "strong (pass@16=0.95)"),
        run("g2", "rq1", "ground_truth", "toy:strong", "strong (pass@16=1.00)")])
    ids = [f"p{i}" for i in range(10)]
    pre = np.full(10, 2)
    counts = {r: {0: Counts(0, 8, ids, pre), 5: Counts(5, 8, ids, pre + 1)} for r in ("g1", "g2")}
    table = verdicts.verdict_table(runs, pd.DataFrame(columns=["run_id", "key", "step", "value"]), counts)
    colours = {m: None if pd.isna(c) else c for m, c in zip(table["model"], table["colour"])}
    assert colours == {"toy:contaminated": "strong, contaminated", "toy:strong": None}
    assert "colour" in verdict_text.records(table)[0]
    assert "| strong, contaminated |" in verdict_text.markdown(table)
    assert verdicts.colour_of("weak, clean (pass@16=0.2; em@0.6=0.00, recall=0.00)") == "weak, clean"


def test_the_set_report_puts_both_sets_side_by_side(tmp_path):
    from studykit.analysis import set_report

    runs = pd.DataFrame([
        {"run_id": "a", "rq": "alignment", "claim": "alignment", "condition": "alignment", "model": "toy:c",
         "task": "toy", "seed": "0", "alignment": "strong, contaminated (x)", "metrics.eval/toy/pass_at_16": 0.95,
         "metrics.eval/toy_clean/pass_at_16": 0.3, "metrics.contamination/toy/em_0.6": 0.8,
         "metrics.contamination/toy/em_0.6_lo": 0.7, "metrics.contamination/toy/em_0.6_hi": 0.9},
        {"run_id": "r", "rq": "rq1", "claim": "random", "condition": "random", "model": "toy:c", "task": "toy",
         "seed": "1", "alignment": "x", "metrics.eval/toy/pass_at_1": 0.6, "metrics.eval/toy_clean/pass_at_1": 0.1,
         "metrics.eval/toy/method_share/recall": 0.7}])
    hist = pd.DataFrame([{"run_id": "r", "key": f"eval/{s}/pass_at_1", "step": st, "value": v}
                         for s, vals in (("toy", (0.5, 0.6)), ("toy_clean", (0.1, 0.1))) for st, v in zip((0, 100), vals)])
    probes, claims = set_report.probe_rows(runs), set_report.claim_rows(runs, hist)
    assert [(p["set"], p["pass@16"]) for p in probes] == [("toy", 0.95), ("toy_clean", 0.3)]
    assert probes[0]["em_0.6"] == [0.8, 0.7, 0.9] and "em_0.6" not in probes[1]
    by_set = {c["set"]: c for c in claims}
    assert by_set["toy"]["delta_pass1"] == pytest.approx(0.1) and by_set["toy_clean"]["delta_pass1"] == 0.0
    assert by_set["toy"]["recall_share_end"] == 0.7 and by_set["toy_clean"]["recall_share_end"] is None
    text = set_report.markdown(probes, claims)
    assert "| toy:c | random | toy | 1 | 0.500 | 0.600 | +0.100 | 0.700 |" in text
    assert set_report.plot_curves(claims, tmp_path / "c.png").exists()
