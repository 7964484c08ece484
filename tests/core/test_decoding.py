"""Decoding: sampling filters and beam search against exhaustive search on toy models."""

import itertools
import math

import pytest
import torch

from rnnkit.core.decoding import beam_search, greedy_search, sample_logits

VOCAB, EOS, BOS = 4, 0, 3


def test_temperature_zero_and_top_k_one_are_argmax():
    logits = torch.randn(50, 10)
    assert torch.equal(sample_logits(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(sample_logits(logits, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_logits(logits, top_p=1e-6), logits.argmax(-1))


def test_top_k_and_top_p_never_sample_outside_the_kept_set():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).expand(4000, 5)
    assert sample_logits(logits, top_k=2, generator=gen).max() <= 1
    probs = logits[0].softmax(-1)  # 0.64, 0.24, 0.087, ...: p=0.7 keeps the first two
    assert probs[0] < 0.7 < probs[:2].sum()
    drawn = sample_logits(logits, top_p=0.7, generator=gen)
    assert set(drawn.tolist()) == {0, 1}


def test_sampling_follows_the_distribution_and_is_reproducible():
    logits = torch.tensor([1.0, 0.0, -1.0]).expand(20000, 3)
    a = sample_logits(logits, temperature=2.0, generator=torch.Generator().manual_seed(1))
    b = sample_logits(logits, temperature=2.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    freq = torch.bincount(a, minlength=3).float() / len(a)
    assert torch.allclose(freq, (logits[0] / 2).softmax(-1), atol=0.015)


def _second_order_model(seed):
    """log p(next | previous two tokens): the state carries the token before the current one."""
    table = torch.randn(VOCAB, VOCAB, VOCAB, generator=torch.Generator().manual_seed(seed))
    table = (3 * table).log_softmax(-1)

    def step(tokens, state):
        before = state[..., 0] if state.dim() == 2 else state[0, :, 0]
        log_probs = table[before, tokens]
        new = tokens[:, None] if state.dim() == 2 else tokens[None, :, None]
        return log_probs, new

    return table, step


def _has_repeated_ngram(seq, n):
    grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


def _exhaustive_best(table, before, max_len, alpha, no_repeat_ngram=0):
    best = (-math.inf, None)
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(VOCAB), repeat=length):
            if EOS in seq[:-1] or (length < max_len and seq[-1] != EOS):
                continue
            if no_repeat_ngram and _has_repeated_ngram(seq, no_repeat_ngram):
                continue
            prev2, prev1, total = before, BOS, 0.0
            for tok in seq:
                total += float(table[prev2, prev1, tok])
                prev2, prev1 = prev1, tok
            score = total / length**alpha
            if score > best[0]:
                best = (score, [t for t in seq if t != EOS])
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("batch_dim", [0, 1])
def test_wide_beam_equals_exhaustive_search(alpha, batch_dim):
    table, step = _second_order_model(seed=0)
    before = torch.tensor([0, 1, 2])
    state = before[:, None] if batch_dim == 0 else before[None, :, None]
    results = beam_search(
        step,
        state,
        bos=BOS,
        eos=EOS,
        beam_width=VOCAB**3,
        max_len=4,
        length_penalty=alpha,
        batch_size=3,
        batch_dim=batch_dim,
    )
    for i in range(3):
        score, tokens = _exhaustive_best(table, int(before[i]), 4, alpha)
        assert results[i][0].tokens == tokens
        assert results[i][0].score == pytest.approx(score, abs=1e-5)
        scores = [h.score for h in results[i]]
        assert scores == sorted(scores, reverse=True)


def test_beam_of_one_is_greedy_and_batched_equals_alone():
    _, step = _second_order_model(seed=3)
    state = torch.tensor([[0], [1], [2]])
    greedy = greedy_search(step, state, bos=BOS, eos=EOS, max_len=6, batch_size=3)
    beams = beam_search(step, state, bos=BOS, eos=EOS, beam_width=1, max_len=6, batch_size=3)
    assert [b[0].tokens for b in beams] == greedy
    batched = beam_search(step, state, bos=BOS, eos=EOS, beam_width=3, max_len=6, batch_size=3)
    for i in range(3):
        alone = beam_search(
            step, state[i : i + 1], bos=BOS, eos=EOS, beam_width=3, max_len=6, batch_size=1
        )
        assert [h.tokens for h in alone[0]] == [h.tokens for h in batched[i]]


@pytest.mark.parametrize("n", [1, 2])
def test_wide_beam_without_repeated_ngrams_equals_exhaustive_search(n):
    table, step = _second_order_model(seed=1)
    before = torch.tensor([0, 1, 2])
    results = beam_search(
        step,
        before[:, None],
        bos=BOS,
        eos=EOS,
        beam_width=VOCAB**4,
        max_len=5,
        batch_size=3,
        no_repeat_ngram=n,
    )
    for i in range(3):
        score, tokens = _exhaustive_best(table, int(before[i]), 5, 1.0, no_repeat_ngram=n)
        assert results[i][0].tokens == tokens
        assert results[i][0].score == pytest.approx(score, abs=1e-5)
        for hypothesis in results[i]:
            assert not _has_repeated_ngram(hypothesis.tokens, n)


def test_blocking_repeated_ngrams_breaks_a_loop():
    # after bos: "a"; after "a": "b"; after "b": "a" again, far above eos: a beam loops
    bos, eos, a, b = 0, 1, 2, 3
    table = torch.full((4, 4), 0.01)
    table[bos, a] = table[a, b] = table[b, a] = 1.0
    table[a, eos] = table[b, eos] = 0.2
    table = table.log_softmax(-1)

    def step(tokens, state):
        return table[tokens], state

    looped = beam_search(step, None, bos=bos, eos=eos, beam_width=3, max_len=8, batch_size=1)
    assert looped[0][0].tokens == [a, b, a, b, a, b, a, b]
    blocked = beam_search(
        step, None, bos=bos, eos=eos, beam_width=3, max_len=8, batch_size=1, no_repeat_ngram=2
    )
    assert blocked[0][0].tokens == [a, b, a]  # "a b" once; "b a" once; then eos
