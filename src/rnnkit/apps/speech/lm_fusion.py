"""Shallow fusion of a character language model into CTC prefix beam search.

Beam search ranks each prefix by ``log P_ctc(prefix | audio) + weight * log P_lm(prefix)
+ bonus * characters`` (Hannun et al. 2014; Gulcehre et al. 2015, "shallow fusion"): the
language model (rnnkit's character LSTM, `rnnkit.apps.lm.LanguageModel`) prefers spellings of
real words and phrases, and the bonus offsets its bias towards short outputs. Both numbers are
chosen on validation voices, never on the test set.

The language model must be trained on text that is not the test transcripts; for the
synthetic speech, ``rnnkit speech train`` draws 20,000 sentences from the training split's
text generator (the test split's comes from another seed, but the grammar is small, so many
test sentences also occur there: the gain is largest on in-grammar speech).

    >>> from rnnkit.apps.lm import LanguageModel, LMConfig
    >>> lm = LanguageModel(LMConfig(hidden_size=32, embedding_dim=16)).fit("go home\\n" * 50)
    >>> scorer = CharLMScorer(lm)
    >>> scorer.start()
    >>> scorer.extend([(ALPHABET.index("g") + 1,)])
    >>> len(scorer.next_scores((ALPHABET.index("g") + 1,)))   # blank slot + characters + end
    30
"""

from __future__ import annotations

import torch

from rnnkit.apps.lm import LanguageModel
from rnnkit.apps.speech.model import ALPHABET

UNSEEN = -20.0  # log-probability of a character the language model never saw
END = len(ALPHABET) + 1  # index of "end of sentence" in `CharLMScorer.next_scores`


class CharLMScorer:
    """``log P(next character | prefix)`` from a character LM, cached per prefix.

    Prefixes are tuples of `ALPHABET` ids (1-based, as the acoustic model writes them).
    `next_scores(prefix)` is a list indexed by those ids (index 0, the blank, unused) with
    the end of the sentence (a newline in the LM's text) at index `END`.
    """

    def __init__(self, language_model: LanguageModel):
        if language_model.config.tokens != "char" or language_model.vocab is None:
            raise ValueError("shallow fusion needs a character-level language model")
        self.net = language_model.model
        index = language_model.vocab.index
        self.fallback = index.get(" ", 0)
        # LM column for each acoustic id (None: a character the LM never saw), then the end.
        self.columns = [None, *(index.get(ch) for ch in ALPHABET), index.get("\n")]
        self.input_ids = [self.fallback, *(index.get(ch, self.fallback) for ch in ALPHABET)]
        self.newline = index.get("\n", self.fallback)
        self.cache: dict[tuple[int, ...], tuple[list[float], list]] = {}

    def _scores(self, logits: torch.Tensor) -> list[list[float]]:
        log_probs = torch.log_softmax(logits.float(), dim=-1).tolist()
        return [[UNSEEN if c is None else row[c] for c in self.columns] for row in log_probs]

    @torch.no_grad()
    def start(self) -> None:
        """Forget every prefix; score the first character after a line break."""
        self.net.eval()
        self.net.reset_state()
        device = next(self.net.parameters()).device
        logits, state = self.net(torch.tensor([[self.newline]], device=device))
        self.cache = {(): (self._scores(logits[:, -1])[0], state)}

    @torch.no_grad()
    def extend(self, prefixes: list[tuple[int, ...]]) -> None:
        """Score the prefixes not seen yet, one LM step from their parents (all batched)."""
        new = [p for p in dict.fromkeys(prefixes) if p not in self.cache]
        if not new:
            return
        parents = [self.cache[p[:-1]][1] for p in new]
        state = [
            tuple(torch.cat([s[layer][k] for s in parents], dim=1) for k in range(2))
            for layer in range(len(parents[0]))
        ]
        device = state[0][0].device
        tokens = torch.tensor([[self.input_ids[p[-1]]] for p in new], device=device)
        logits, state = self.net(tokens, state)
        for i, (prefix, scores) in enumerate(zip(new, self._scores(logits[:, -1]), strict=True)):
            own = [tuple(t[:, i : i + 1] for t in layer) for layer in state]
            self.cache[prefix] = (scores, own)

    def next_scores(self, prefix: tuple[int, ...]) -> list[float]:
        return self.cache[prefix][0]


def language_model_text(sentences: list[str]) -> str:
    """Training text for the LM: one sentence per line (a newline ends each sentence)."""
    return "".join(f"{s}\n" for s in sentences)
