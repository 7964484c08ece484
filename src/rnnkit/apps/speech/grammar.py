"""Decoding a CTC model's output under a word grammar: one word of a list, or a loop of them.

This is the same task knowledge a JSGF grammar gives PocketSphinx (``<digit>`` or
``<digit>+``), applied to rnnkit's character posteriors:

- `best_word`: the word of the list with the highest CTC probability, summed over all its
  alignments (the forward algorithm, `torch.nn.functional.ctc_loss`);
- `best_word_sequence`: the Viterbi path through a loop of the words, each optionally
  preceded by a space, i.e. the best single alignment of any sequence of them.

    >>> import torch
    >>> from rnnkit.apps.speech.model import ALPHABET, text_to_ids
    >>> def heard(text):  # a CTC model's output that spells `text`, a character per frame
    ...     ids = torch.tensor(text_to_ids(text))
    ...     return torch.nn.functional.one_hot(ids, len(ALPHABET) + 1).mul(5.0).log_softmax(-1)
    >>> log_probs = heard("tvo")  # (frames, characters + blank)
    >>> best_word(log_probs, ["zero", "one", "two"])
    'two'
    >>> best_word_sequence(heard("tvo one ane zero"), ["zero", "one", "two"])
    'two one one zero'
    >>> word_list("digits")[:3], word_list("Yes, no")
    (['zero', 'one', 'two'], ['yes', 'no'])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.apps.speech.model import ALPHABET, BLANK, text_to_ids
from rnnkit.data.speech import DIGIT_WORDS
from rnnkit.errors import UserError

SPACE = text_to_ids(" ")[0]


def word_list(spec: str) -> list[str]:
    """A grammar's words from ``"digits"`` (zero .. nine) or a comma-separated list.

    Raises:
        UserError: for an empty list, or a word with characters the model cannot spell
            (letters and apostrophes only).
    """
    if spec.strip().lower() == "digits":
        return list(DIGIT_WORDS)
    words = [w.strip().lower() for w in spec.split(",") if w.strip()]
    if not words:
        raise UserError(f"words {spec!r}: expected 'digits' or a comma-separated list of words")
    for word in words:
        if any(ch not in ALPHABET or ch == " " for ch in word):
            raise UserError(f"word {word!r}: only letters and apostrophes can be spelled")
    return words


def word_log_likelihoods(log_probs: torch.Tensor, words: Sequence[str]) -> torch.Tensor:
    """``log P(word | audio)`` under CTC for each word: (frames, characters + blank) -> (words,).

    A word longer than the frames can hold gets ``-inf``.
    """
    targets = [text_to_ids(w) for w in words]
    frames = log_probs.shape[0]
    nll = F.ctc_loss(
        log_probs.float()[:, None, :].expand(frames, len(words), -1),
        torch.tensor([c for t in targets for c in t]),
        torch.full((len(words),), frames),
        torch.tensor([len(t) for t in targets]),
        blank=BLANK,
        reduction="none",
        zero_infinity=False,
    )
    return -nll


def decode_words(
    log_probs: torch.Tensor, words: Sequence[str], one_word: bool = False, word_bonus: float = 0.0
) -> str:
    """One utterance under a word grammar: exactly one of ``words`` (`best_word`), or a
    sequence of them with ``word_bonus`` per word (`best_word_sequence`)."""
    if one_word:
        return best_word(log_probs, words)
    return best_word_sequence(log_probs, words, word_bonus)


def best_word(log_probs: torch.Tensor, words: Sequence[str]) -> str:
    """The most probable single word of ``words`` (an isolated-word grammar)."""
    return words[int(word_log_likelihoods(log_probs, words).argmax())]


class _LoopGraph:
    """Every word's CTC states side by side: ``[blank, space, blank, c1, blank, ..., cn, blank]``.

    Attributes (flat over all words' states): ``label`` (the character each state emits),
    ``step_ok`` / ``skip_ok`` (whether s-1 / s-2 may lead to s inside the word), ``entry``
    (states a word may start in: before or on its optional space, or on its first letter),
    ``word`` (which word a state belongs to); ``ends``: per word its last letter's and last
    blank's states.
    """

    def __init__(self, words: Sequence[str]):
        labels, step_ok, skip_ok, entry, word_of, ends, first = [], [], [], [], [], [], []
        for w, text in enumerate(words):
            chars = [SPACE, *text_to_ids(text)]
            ext = [BLANK]
            for c in chars:
                ext += [c, BLANK]
            start = len(labels)
            for s, c in enumerate(ext):
                labels.append(c)
                step_ok.append(s > 0)
                skip_ok.append(s >= 2 and c != BLANK and c != ext[s - 2])
                entry.append(s <= 3)
                word_of.append(w)
            ends.append((start + len(ext) - 2, start + len(ext) - 1))
            first.append(chars[1])
        self.label = np.array(labels)
        self.step_ok, self.skip_ok = np.array(step_ok), np.array(skip_ok)
        self.entry, self.word = np.array(entry), np.array(word_of)
        self.ends = np.array(ends)  # (words, 2): last letter, last blank
        self.first_letter = np.array(first)
        self.last_letter = np.array([text_to_ids(t)[-1] for t in words])


def best_word_sequence(
    log_probs: torch.Tensor, words: Sequence[str], word_bonus: float = 0.0
) -> str:
    """The Viterbi word sequence through a loop of ``words`` (one or more of them).

    Args:
        log_probs: (frames, characters + blank) of one utterance.
        words: the grammar's words.
        word_bonus: added to the log score for every word said (a word insertion bonus, as
            in any word decoder): above 0 it favours more, shorter words over fewer, longer
            ones. Chosen on validation data (`rnnkit.apps.speech.fsdd.choose`).
    Returns:
        the words said, separated by spaces.
    """
    graph = _LoopGraph(words)
    lp = log_probs.float().numpy()
    frames, n_words = lp.shape[0], len(words)
    # Back pointers: a node is "word w ended, after history node p"; -1 is the start.
    node_word: list[int] = []
    node_parent: list[int] = []
    score = np.where(graph.entry, lp[0, graph.label] + word_bonus, -np.inf)
    history = np.full(len(score), -1)
    first_state = np.r_[0, graph.ends[:-1, 1] + 1]  # each word's state 0
    for t in range(1, frames):
        # Words that ended at t - 1 may be followed by any word from t on.
        end_states = graph.ends.reshape(-1)  # letter, blank, letter, blank, ...
        end_scores = score[end_states] + word_bonus  # what entering a next word starts from
        end_nodes = np.arange(len(node_word), len(node_word) + len(end_states))
        node_word += list(np.repeat(np.arange(n_words), 2))
        node_parent += list(history[end_states])
        best_end = int(np.argmax(end_scores))
        # Entering on the first letter right after a word's last letter needs them to
        # differ (CTC would merge two equal letters without a blank between).
        is_letter = np.tile([True, False], n_words)
        letters = np.repeat(graph.last_letter, 2)
        stay = score
        step = np.where(graph.step_ok, np.r_[-np.inf, score[:-1]], -np.inf)
        skip = np.where(graph.skip_ok, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)
        enter = np.full(len(score), -np.inf)
        enter_node = np.full(len(score), -1)
        for w in range(n_words):
            base = first_state[w]
            enter[base : base + 3] = end_scores[best_end]
            enter_node[base : base + 3] = end_nodes[best_end]
            allowed = np.where(is_letter & (letters == graph.first_letter[w]), -np.inf, end_scores)
            k = int(np.argmax(allowed))
            enter[base + 3], enter_node[base + 3] = allowed[k], end_nodes[k]
        candidates = np.stack([stay, step, skip, enter])
        choice = np.argmax(candidates, axis=0)
        sources = np.stack(
            [history, np.r_[-1, history[:-1]], np.r_[-1, -1, history[:-2]], enter_node]
        )
        history = sources[choice, np.arange(len(score))]
        score = candidates[choice, np.arange(len(score))] + lp[t, graph.label]
    end_states = graph.ends.reshape(-1)
    k = int(np.argmax(score[end_states]))
    said = [int(np.repeat(np.arange(n_words), 2)[k])]
    node = int(history[end_states[k]])
    while node >= 0:
        said.append(node_word[node])
        node = node_parent[node]
    return " ".join(words[w] for w in reversed(said))
