"""Length-sorted batches of corpus sentences (the word pooling itself is ``pipeline.relations.words``).

Subword -> word pooling (Clark et al.):
    attention TO a word is the sum over its subwords; attention FROM a word is the mean over its
    subwords:  A_w = M_avg A M_sum^T  (M_sum[u, t] = 1 when subword t lies in word u; M_avg = M_sum
    with rows normalised to 1). Logits are pooled by the mean on both sides: L_w = M_avg L M_avg^T.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pipeline.evaluation.corpus import Corpus
from pipeline.relations.words import WordBatch, masked_argmax, pad_rows, pool_mean, pool_to, word_batch, word_pooling


def batches(corpus: Corpus, causal: bool, budget: int = 3000, only: np.ndarray | None = None) -> Iterator[WordBatch]:
    """Length-sorted batches of at most ``budget`` padded subword tokens (B * T)."""
    order = [k for k in np.argsort([len(s.ids) for s in corpus.sentences], kind="stable") if only is None or only[k]]
    group: list[int] = []
    for k in order + [None]:
        if k is not None:
            T_new = len(corpus.sentences[k].ids)
            if not group or (len(group) + 1) * T_new <= budget:
                group.append(k)
                continue
        if not group:
            break
        yield _make_batch(corpus, group, causal)
        group = [k] if k is not None else []


def _make_batch(corpus: Corpus, group: list[int], causal: bool) -> WordBatch:
    sents = [corpus.sentences[k] for k in group]
    ids, mask = pad_rows([s.ids for s in sents])
    gidx = torch.tensor(
        [corpus.word_offset[k] + u for k, s in zip(group, sents) for u in range(s.n_words)], dtype=torch.long
    )
    return word_batch(ids, mask, [s.members for s in sents], causal, sent=group, gidx=gidx)


__all__ = ["WordBatch", "batches", "masked_argmax", "pool_mean", "pool_to", "word_pooling"]
