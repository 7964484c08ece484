"""Decoding: turning a model's next-token scores into sequences.

Two ways, shared by every generator in rnnkit (language model, music, captioning,
translation, speech):

- `sample_logits`: draw the next token with temperature, top-k and nucleus (top-p) filtering.
- `greedy_search` / `beam_search`: the most likely sequence under a step function, batched.

A *step function* is the model seen one token at a time::

    step_fn(tokens: LongTensor[N], state) -> (log_probs: Tensor[N, V], new_state)

where ``state`` is any nesting of tuples/lists/dicts of tensors whose ``batch_dim``
(0 by default; 1 for an LSTM's ``(h, c)`` of shape [layers, N, H]) indexes the N rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

State = Any
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


def sample_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample one token per row of ``logits``.

    Args:
        logits: unnormalized scores, shape [..., V].
        temperature: divides the logits; below 1 sharpens, above 1 flattens; 0 means argmax.
        top_k: keep only the k highest-scoring tokens (None or 0: all).
        top_p: keep the smallest set of tokens whose probabilities add up to at least p
            (nucleus sampling, Holtzman et al. 2020); the most likely token is always kept.
        generator: a seeded ``torch.Generator`` for reproducible samples.

    Returns:
        LongTensor of shape [...] with the sampled token ids.

    Example:
        >>> model_logits = torch.randn(4, 10, 100)  # [batch, time, vocabulary]
        >>> sample_logits(model_logits[:, -1], temperature=0.8, top_p=0.9).shape
        torch.Size([4])
        >>> logits = torch.tensor([[2.0, 1.0, -1.0], [0.0, 0.0, 3.0]])
        >>> sample_logits(logits, temperature=0)  # argmax
        tensor([0, 2])
        >>> sample_logits(logits, top_p=0.5)  # the nucleus holds only the most likely token
        tensor([0, 2])
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    vocab = scores.shape[-1]
    if top_k and top_k < vocab:
        kth_best = scores.topk(top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probs = sorted_scores.softmax(dim=-1)
        # Drop a token when the tokens before it already reach top_p.
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    probs = scores.softmax(dim=-1).reshape(-1, vocab)
    tokens = torch.multinomial(probs, 1, generator=generator)
    return tokens.reshape(logits.shape[:-1])


def map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    """Apply ``fn`` to every tensor in a nested state (tuples, lists, dicts); keep the rest."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple | list):
        return type(state)(map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    return state


def _select_rows(state: State, index: Tensor, batch_dim: int) -> State:
    return map_state(state, lambda t: t.index_select(batch_dim, index.to(t.device)))


@torch.no_grad()
def greedy_search(
    step_fn: StepFn,
    init_state: State,
    bos: Tensor | int,
    eos: int,
    max_len: int,
    batch_size: int | None = None,
) -> list[list[int]]:
    """The most likely token at every step, for a batch; stops at ``eos`` or ``max_len``.

    Args:
        step_fn: see the module docstring.
        init_state: the state for the batch (e.g. the encoder's summary).
        bos: the start token, an int (with ``batch_size``) or a LongTensor [N].
        eos: the end token; it is not included in the result.
        max_len: the most tokens generated per sequence.

    Returns:
        One list of token ids per sequence.
    """
    tokens = _start_tokens(bos, batch_size)
    finished = torch.zeros_like(tokens, dtype=torch.bool)
    outputs: list[Tensor] = []
    state = init_state
    for _ in range(max_len):
        log_probs, state = step_fn(tokens, state)
        tokens = log_probs.argmax(dim=-1)
        outputs.append(tokens.masked_fill(finished, eos))
        finished |= tokens == eos
        if finished.all():
            break
    return [_strip(seq, eos) for seq in torch.stack(outputs, dim=1).tolist()]


@dataclass
class Hypothesis:
    """A finished beam: its tokens (no bos/eos), total log-probability and ranking score."""

    tokens: list[int]
    log_prob: float
    score: float


@torch.no_grad()
def beam_search(
    step_fn: StepFn,
    init_state: State,
    bos: Tensor | int,
    eos: int,
    beam_width: int = 5,
    max_len: int = 50,
    length_penalty: float = 1.0,
    batch_size: int | None = None,
    batch_dim: int = 0,
    no_repeat_ngram: int = 0,
) -> list[list[Hypothesis]]:
    """Beam search over a batch, with length normalization.

    Each of the N sequences keeps ``beam_width`` partial hypotheses. Beams are ranked by
    ``log_prob / length ** length_penalty`` (0: raw log-probability, which favours short
    outputs; 1: average log-probability per token). A beam that has produced ``eos`` stays
    finished with its score frozen, competing with the live ones.

    Args:
        step_fn: ``(tokens [N*K], state) -> (log_probs [N*K, V], state)``; see module docstring.
        init_state: the state for the N sequences (rows along ``batch_dim``); it is repeated
            for the K beams of each sequence.
        bos: start token (int, with ``batch_size``) or LongTensor [N].
        eos: end token, not included in the returned tokens.
        beam_width: K, the number of hypotheses kept per sequence.
        max_len: the most tokens generated per hypothesis (eos included).
        length_penalty: the exponent alpha of the length normalization.
        batch_dim: which dimension of the state tensors indexes the sequences.
        no_repeat_ngram: if n > 0, no hypothesis holds the same n tokens in a row twice
            (the token that would repeat an n-gram is banned; fairseq's and Hugging Face's
            ``no_repeat_ngram_size``): the cure for beams that loop ("a man on a man on").

    Returns:
        For each sequence, its K hypotheses, best first.

    Example:
        A bigram table as the model (tokens: 1 bos, 2 eos, 3 a word); the state is unused:

        >>> table = torch.tensor([[0.0, 0.0, 1.0, 0.0],
        ...                       [0.0, 0.0, 0.1, 0.9],   # after bos: mostly the word
        ...                       [0.0, 0.0, 1.0, 0.0],
        ...                       [0.0, 0.0, 0.6, 0.4]]).log()   # after the word: eos or more
        >>> def step(tokens, state):
        ...     return table[tokens], state
        >>> hypotheses = beam_search(step, None, bos=1, eos=2, beam_width=2, batch_size=4)
        >>> [(h.tokens, round(h.score, 3)) for h in hypotheses[0]]
        [([3], -0.308), ([3, 3], -0.511)]
    """
    start = _start_tokens(bos, batch_size)
    n, k = start.shape[0], beam_width
    device = start.device
    rows = torch.arange(n, device=device).repeat_interleave(k)
    state = _select_rows(init_state, rows, batch_dim)
    tokens = start.repeat_interleave(k)
    # Only the first beam of each sequence is live at the start, so the first expansion
    # does not produce K copies of the same hypothesis.
    log_prob = torch.full((n, k), float("-inf"), device=device)
    log_prob[:, 0] = 0.0
    lengths = torch.zeros(n, k, device=device)
    finished = torch.zeros(n, k, dtype=torch.bool, device=device)
    history = torch.empty(n, k, 0, dtype=torch.long, device=device)

    for _ in range(max_len):
        step_log_probs, state = step_fn(tokens, state)
        vocab = step_log_probs.shape[-1]
        step_log_probs = step_log_probs.view(n, k, vocab).float()
        if no_repeat_ngram > 0:
            banned = repeated_ngram_tokens(history, no_repeat_ngram, vocab)
            step_log_probs = step_log_probs.masked_fill(banned, float("-inf"))
        # A finished beam has one continuation: eos again, at no cost and no extra length.
        frozen = torch.full_like(step_log_probs, float("-inf"))
        frozen[..., eos] = 0.0
        step_log_probs = torch.where(finished[..., None], frozen, step_log_probs)
        total = (log_prob[..., None] + step_log_probs).view(n, k * vocab)
        new_lengths = torch.where(finished, lengths, lengths + 1)[..., None].expand(n, k, vocab)
        new_lengths = new_lengths.reshape(n, k * vocab)
        ranking = total / new_lengths.clamp(min=1) ** length_penalty
        ranking = ranking.masked_fill(total.isinf(), float("-inf"))
        best = ranking.topk(k, dim=-1).indices  # [n, k]
        beam, token = best // vocab, best % vocab
        log_prob = total.gather(1, best)
        lengths = new_lengths.gather(1, best)
        was_finished = finished.gather(1, beam)
        finished = was_finished | (token == eos)
        history = torch.cat(
            [history.gather(1, beam[..., None].expand_as(history)), token[..., None]], dim=-1
        )
        flat = (beam + torch.arange(n, device=device)[:, None] * k).reshape(-1)
        state = _select_rows(state, flat, batch_dim)
        tokens = token.reshape(-1)
        if finished.all():
            break

    scores = log_prob / lengths.clamp(min=1) ** length_penalty
    results = []
    for i in range(n):
        order = scores[i].argsort(descending=True).tolist()
        results.append(
            [
                Hypothesis(
                    _strip(history[i, j].tolist(), eos), float(log_prob[i, j]), float(scores[i, j])
                )
                for j in order
                if not torch.isinf(log_prob[i, j])
            ]
        )
    return results


def repeated_ngram_tokens(history: Tensor, n: int, vocab: int) -> Tensor:
    """Bool [..., V]: the tokens that would make each row of ``history`` [..., T] end with
    an n-gram it already holds (its last n - 1 tokens seen before, followed by that token).

    Example:
        >>> repeated_ngram_tokens(torch.tensor([[4, 5, 6, 4, 5]]), 3, 8).nonzero().tolist()
        [[0, 6]]
    """
    length = history.shape[-1]
    banned = torch.zeros(*history.shape[:-1], vocab, device=history.device)
    if length < n or n < 1:
        return banned.bool()
    if n == 1:  # every token already written
        return banned.scatter_(-1, history, 1.0).bool()
    windows = history.unfold(-1, n, 1)  # [..., T - n + 1, n]
    prefix = history[..., length - n + 1 :]  # the last n - 1 tokens
    matches = (windows[..., :-1] == prefix.unsqueeze(-2)).all(dim=-1)
    return banned.scatter_add_(-1, windows[..., -1], matches.float()).gt(0)


def _start_tokens(bos: Tensor | int, batch_size: int | None) -> Tensor:
    if isinstance(bos, Tensor):
        return bos.long().reshape(-1)
    if batch_size is None:
        raise ValueError("pass batch_size when bos is an int")
    return torch.full((batch_size,), bos, dtype=torch.long)


def _strip(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens
