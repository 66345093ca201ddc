"""SmolLM2-135M (LLaMA-type, GQA + RoPE) from its GGUF package: exactness on a real causal model."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from pipeline.model.adapters import load_model

    return load_model("smollm2")


def test_smollm2_layout_and_exact_logits(smollm2):
    from pipeline.model.activations import capture
    from pipeline.model.extractor import KnowledgeGraphExtractor

    ex = KnowledgeGraphExtractor(smollm2.model, smollm2.tokenizer)
    info = ex.adapter.describe()
    assert info["family"] == "llama" and info["n_kv_heads"] < info["n_heads"] and info["positional"] == "rotary"
    enc = smollm2.tokenizer(["Marie Curie founded the Radium Institute in Paris."], return_tensors="pt")
    layers = [0, ex.adapter.n_layers // 2, ex.adapter.n_layers - 1]
    acts = capture(ex.adapter, enc["input_ids"], enc["attention_mask"], layers=layers, logits=True)
    worst = 0.0
    for layer in layers:
        full = [ex.subspace(layer, h, list(range(ex.adapter.d_head))) for h in range(ex.adapter.n_heads)]
        ours = ex.subspace_logits(acts, full).transpose(0, 1)
        worst = max(worst, (ours - acts.logits[layer]).abs().max().item())
    assert worst <= 1e-4, worst
    subs = ex.extract_relational_subspaces(layers[1], top_k=3)
    rels = ex.identify_relation_types(enc["input_ids"], subs, threshold=0.5)
    assert all(r.key < r.query for r in rels)  # causal: a token only relates to earlier tokens


def test_smollm2_typed_relations_give_head_to_dependent_span_edges(smollm2):
    """The decoder's typed set on the ingest path: the sink token, visible-direction units oriented by
    their head side, relation names and units on every edge."""
    from pipeline.model.extractor import KnowledgeGraphExtractor
    from pipeline.relations import RelationExtractor
    from pipeline.text.defaults import DEFAULT_SPACY
    from pipeline.text.nlp import load_spacy
    from pipeline.text.spans import parse_documents
    from pipeline.types import DEPENDENCY_RELATIONS, Document

    ex = KnowledgeGraphExtractor(smollm2.model, smollm2.tokenizer, typed_relations="smollm2")
    assert ex.typed_relations is not None
    typed = list(ex.typed_relations.relations.values())
    assert {t.direction for t in typed} == {"visible"} and {t.head_side for t in typed} <= {"query", "key"}
    rex = RelationExtractor(ex, typed, threshold=0.5)
    assert rex.prefix is not None  # SmolLM2's tokenizer adds no BOS: the attention sink is prepended
    text = "Priya Raman signed a contract with the new team. The company builds small satellites."
    analysis = next(iter(rex.run(parse_documents(load_spacy(DEFAULT_SPACY), [Document("d", text)]))))
    assert analysis.relations
    spans = analysis.spans
    by_unit = {t.id: t for t in typed}
    found = set()
    for r in analysis.relations:
        assert r.relation in DEPENDENCY_RELATIONS and by_unit[r.unit].relation == r.relation and r.score >= 0.5
        assert spans[r.source].sent_index == spans[r.target].sent_index == r.sent_index
        found.add((spans[r.source].text, r.relation, spans[r.target].text))
    assert ("builds", "nsubj", "The company") in found or ("signed", "nsubj", "Priya Raman") in found, found


def test_smollm2_score_words_equals_the_per_unit_reference(smollm2):
    """The batched score_words on SmolLM2 (RoPE: truncated units as rotated products, assembled ones
    through their position-only component products) against the per-unit reference."""
    from test_typed_relations import SENTENCES, _assert_same_scores, _sentence_batch

    from pipeline.model.activations import capture
    from pipeline.model.extractor import KnowledgeGraphExtractor
    from pipeline.model.units import HeadFactors, model_mask
    from pipeline.relations.typed import score_words, score_words_reference
    from pipeline.relations.words import prefix_token, word_batch

    ex = KnowledgeGraphExtractor(smollm2.model, smollm2.tokenizer, typed_relations="smollm2")
    assert ex.typed_relations is not None
    typed = list(ex.typed_relations.relations.values())
    ids, mask, members = _sentence_batch(smollm2.tokenizer, SENTENCES, prefix_token(smollm2.tokenizer, True))
    wb = word_batch(ids, mask, members, True)
    layers = sorted({t.layer for t in typed} | {t.gate_layer for t in typed})
    acts = capture(ex.adapter, wb.ids, wb.mask, layers=layers)
    assert acts.rotary is not None
    rot = (acts.rotary[0].float(), acts.rotary[1].float())
    factors = {t.layer: HeadFactors(ex, t.layer) for t in typed}
    amask = model_mask(wb.mask, True)
    residuals = {l: r.float() for l, r in acts.residuals.items()}
    fast = score_words(typed, factors, residuals, rot, amask, wb)
    _assert_same_scores(fast, score_words_reference(typed, factors, residuals, rot, amask, wb))


def test_smollm2_assembled_units_causal_and_cached_equal_their_own_logits(smollm2):
    """Every layer's assembled units on SmolLM2 as score_words computes them (together, causal lower
    triangle, RoPE position terms from the cache) against assembled_logits one unit at a time: a short
    batch (cache built), a shorter one (cache sliced) and one past CACHED_POSITIONS (computed afresh)."""
    from test_typed_relations import _sentence_batch

    from pipeline.model.activations import capture
    from pipeline.model.extractor import KnowledgeGraphExtractor
    from pipeline.model.units import CACHED_POSITIONS, assembled_logits, unit_logits
    from pipeline.relations.words import prefix_token

    ex = KnowledgeGraphExtractor(smollm2.model, smollm2.tokenizer, typed_relations="smollm2")
    assert ex.typed_relations is not None
    by_layer: dict[int, list] = {}
    for t in ex.typed_relations.relations.values():
        if t.method == "assembled":
            by_layer.setdefault(t.layer, []).append(t.components)
    layers = sorted(by_layer)
    long_text = " ".join(["The committee that the council appointed last spring met again on Tuesday ,"] * 6)
    texts = [
        ["Marie Curie won the Nobel Prize in Physics .", "She left ."],
        ["The train was late ."],
        [long_text, "It rained ."],
    ]
    for batch in texts:
        ids, mask, _ = _sentence_batch(smollm2.tokenizer, batch, prefix_token(smollm2.tokenizer, True))
        acts = capture(ex.adapter, ids, mask, layers=layers)
        assert acts.rotary is not None
        rot = (acts.rotary[0].float(), acts.rotary[1].float())
        T = ids.shape[1]
        assert (T > CACHED_POSITIONS) == (batch is texts[2])
        lower = torch.ones(T, T, dtype=torch.bool).tril()
        for layer in layers:
            hf, x = ex.head_factors(layer), acts.residuals[layer].float()
            units = [("assembled", comps) for comps in by_layer[layer]]
            got = unit_logits(hf, x, rot, units, causal=True)
            for n, (_, comps) in enumerate(units):
                ref = assembled_logits(hf, x, rot, comps)
                torch.testing.assert_close(got[n][:, lower], ref[:, lower], atol=1e-3, rtol=1e-4)
