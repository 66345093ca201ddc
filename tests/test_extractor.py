"""The QK relational-subspace extractor: exactness per architecture, the SVD, the public API, bad input."""

from __future__ import annotations

import pytest
import torch
from tiny_models import VOCAB, tiny

from pipeline.errors import UnsupportedArchitectureError
from pipeline.model.activations import capture
from pipeline.model.circuit import FactoredQK, energy_rank
from pipeline.model.extractor import KnowledgeGraphExtractor, RelationalSubspace

FAMILIES = ["bert", "gpt2", "llama", "qwen2", "gpt_neox"]


@pytest.fixture(scope="module")
def default_model():
    from pipeline.model.adapters import load_model

    return load_model()


@pytest.fixture(scope="module")
def default_extractor(default_model):
    return KnowledgeGraphExtractor(default_model.model, default_model.tokenizer)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (2, 13), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding in the second row
    return ids, mask


def _full(ex: KnowledgeGraphExtractor, layer: int) -> list[RelationalSubspace]:
    d = ex.adapter.d_head
    return [ex.subspace(layer, h, list(range(d))) for h in range(ex.adapter.n_heads)]


@pytest.mark.parametrize("family", FAMILIES)
def test_all_components_plus_biases_reproduce_model_logits(family):
    ex = KnowledgeGraphExtractor(tiny(family))
    ids, mask = _batch()
    acts = capture(ex.adapter, ids, mask, logits=True, attentions=True)
    assert acts.logits, "the model's own logits were not captured"
    for layer in range(ex.adapter.n_layers):
        model_logits = acts.logits[layer]  # [B, H, T, T]
        ours = ex.subspace_logits(acts, _full(ex, layer)).transpose(0, 1)
        assert (ours - model_logits).abs().max().item() <= 1e-4
        for head in range(ex.adapter.n_heads):
            terms, bias = ex.decompose_logits(acts, layer, head)
            assert terms.shape[0] == ex.adapter.d_head
            assert (terms.sum(0) + bias - model_logits[:, head]).abs().max().item() <= 1e-4
        # the full subspace's attention share is the model's attention on real rows
        probs = ex.scores_from_activations(acts, _full(ex, layer)).transpose(0, 1)
        real = mask.bool()[:, None, :, None]
        assert ((probs - acts.attentions[layer]).abs() * real).max().item() <= 1e-5


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_rank_one_terms_are_sigma_times_coordinates_without_rope(family):
    ex = KnowledgeGraphExtractor(tiny(family))
    ids, mask = _batch(1)
    acts = capture(ex.adapter, ids, mask, layers=[1])
    c = ex.circuit(1, 2)
    x = acts.residuals[1]
    a, b = x @ c.U, x @ c.V  # [B, T, r]
    content = torch.einsum("r,bir,bjr->rbij", c.sigma, a, b) * ex.adapter.scaling(1)
    terms, _ = ex.decompose_logits(acts, 1, 2)
    # term r = content_r + (query coordinate r) * (alpha_r . b_k): the key-bias share of component r
    b_k = ex._biases[1][1][ex.adapter.kv_head(2)].double()
    key_bias = (a * (c.alpha.T @ b_k)).permute(2, 0, 1)[..., None] * ex.adapter.scaling(1)
    torch.testing.assert_close(terms, content + key_bias, rtol=0, atol=1e-10)


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_rope_terms_equal_content_only_circuit_at_offset_zero(family):
    ex = KnowledgeGraphExtractor(tiny(family))
    ids, mask = _batch(2)
    acts = capture(ex.adapter, ids, mask, layers=[0])
    terms, _ = ex.decompose_logits(acts, 0, 1)
    c = ex.circuit(0, 1)
    x = acts.residuals[0]
    a, b = x @ c.U, x @ c.V
    b_k = ex._biases[0][1][ex.adapter.kv_head(1)].double()
    diag = torch.einsum("r,bir,bir->rbi", c.sigma, a, b) + (a * (c.alpha.T @ b_k)).permute(2, 0, 1)
    # cos/sin come from the model's rotary module in float32, so cos^2 + sin^2 = 1 only to ~1e-8
    torch.testing.assert_close(terms.diagonal(dim1=-2, dim2=-1), diag * ex.adapter.scaling(0), rtol=0, atol=1e-6)
    # ... while off the diagonal the rotation matters (a real RoPE model, not a no-op)
    assert not torch.allclose(terms, torch.einsum("r,bir,bjr->rbij", c.sigma, a, b) * ex.adapter.scaling(0), atol=1e-6)


def test_gqa_query_heads_share_their_key_head():
    ex = KnowledgeGraphExtractor(tiny("llama"))
    assert ex.adapter.n_heads == 4 and ex.adapter.n_kv_heads == 2
    assert [ex.adapter.kv_head(h) for h in range(4)] == [0, 0, 1, 1]
    qk = ex.adapter.layer_qk(0)
    torch.testing.assert_close(ex.circuit(0, 1).B, qk.w_k[0])
    torch.testing.assert_close(ex.circuit(0, 3).B, qk.w_k[1])


def test_default_model_reconstructs_logits_in_fp32(default_model, default_extractor):
    enc = default_model.tokenizer(
        ["Marie Curie founded the Radium Institute in Paris.", "The train was late."], return_tensors="pt", padding=True
    )
    acts = capture(default_extractor.adapter, enc["input_ids"], enc["attention_mask"], logits=True)
    worst = 0.0
    for layer in range(6):
        ours = default_extractor.subspace_logits(acts, _full(default_extractor, layer)).transpose(0, 1)
        worst = max(worst, (ours - acts.logits[layer]).abs().max().item())
    assert worst <= 1e-4


def test_factored_svd_matches_dense_and_is_canonical():
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(96, 16, generator=gen, dtype=torch.float64)
    B = torch.randn(96, 16, generator=gen, dtype=torch.float64)
    f = FactoredQK(A, B)
    dense_sigma = torch.linalg.svdvals(A @ B.T)[:16]
    torch.testing.assert_close(f.sigma, dense_sigma, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f.reconstruct(), A @ B.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(f.U.T @ f.U, torch.eye(16, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(f.alpha.T @ f.beta, torch.diag(f.sigma), rtol=0, atol=1e-10)
    # canonical signs: the largest-magnitude entry of every u_r is positive, and recomputation agrees
    assert bool((f.U[f.U.abs().argmax(0), torch.arange(16)] > 0).all())
    g = FactoredQK(A.clone(), B.clone())
    torch.testing.assert_close(g.U, f.U)
    # truncation error is the tail of the spectrum (Eckart-Young)
    err = torch.linalg.matrix_norm(f.reconstruct(4) - A @ B.T, ord=2)
    torch.testing.assert_close(err, f.sigma[4], rtol=1e-9, atol=0)


def test_energy_rank_rule():
    sigma = torch.tensor([10.0, 3.0, 1.0, 0.5, 0.1])
    assert energy_rank(sigma, 0.9, 1) == 1  # 100/110.26 = 0.907
    assert energy_rank(sigma, 0.95, 1) == 2
    assert energy_rank(sigma, 0.9, 3) == 3  # the floor
    assert energy_rank(sigma, 0.9, 8) == 5  # capped at the rank


def test_extract_relational_subspaces_ranks_by_spread(default_extractor):
    subs = default_extractor.extract_relational_subspaces(2, top_k=3)
    assert len(subs) == 3
    spreads = [s.spread for s in subs]
    assert spreads == sorted(spreads, reverse=True) and spreads[0] > 0
    s = subs[0]
    assert s.id == f"L2H{s.head}k{s.rank}" and s.rank >= 8 and s.components == tuple(range(s.rank))
    assert s.U.shape == (384, s.rank) and s.V.shape == (384, s.rank) and s.sigma.shape == (s.rank,)
    assert bool((s.sigma[:-1] >= s.sigma[1:]).all())
    # the same call again gives the same ids (cached, deterministic)
    assert [t.id for t in default_extractor.extract_relational_subspaces(2, top_k=3)] == [t.id for t in subs]
    comps = default_extractor.extract_relational_subspaces(2, top_k=5, granularity="component")
    assert all(c.rank == 1 and "c" in c.id for c in comps)


def test_project_token_embeddings_static_and_contextual(default_model, default_extractor):
    subs = default_extractor.extract_relational_subspaces(1, top_k=2)
    ids = default_model.tokenizer("Paris is the capital of France.")["input_ids"]
    ctx = default_extractor.project_token_embeddings(ids, subs)
    static = default_extractor.project_token_embeddings(ids, subs, mode="static")
    for p, s in zip(ctx, subs):
        assert p.subspace is s and p.query.shape == (1, len(ids), s.rank) and p.key.shape == (1, len(ids), s.rank)
    emb = default_model.model.get_input_embeddings().weight[torch.tensor(ids)]
    torch.testing.assert_close(static[0].query[0], emb @ subs[0].U)
    assert not torch.allclose(static[0].query, ctx[0].query)  # contextual really is the residual stream


def test_identify_relation_types_on_real_text(default_model, default_extractor):
    tok = default_model.tokenizer
    enc = tok(["The young doctor from Nairobi won the award for her work on malaria."], return_tensors="pt")
    subs = [s for layer in range(6) for s in default_extractor.extract_relational_subspaces(layer, top_k=3)]
    rels = default_extractor.identify_relation_types(enc["input_ids"], subs, threshold=0.5)
    assert rels, "no relations on real text at 0.5"
    special = set(tok.all_special_ids)
    ids = enc["input_ids"][0].tolist()
    for r in rels:
        assert 0.5 <= r.score <= 1.0 and r.query != r.key
        assert ids[r.query] not in special and ids[r.key] not in special
        assert r.relation in {s.id for s in subs}
    # raising the threshold keeps a subset
    strict = default_extractor.identify_relation_types(enc["input_ids"], subs, threshold=0.8)
    assert {(r.query, r.key, r.relation) for r in strict} <= {(r.query, r.key, r.relation) for r in rels}
    # the score is a distribution over keys: each query's shares sum to 1 per subspace
    scores, _ok, _ = default_extractor.relation_scores(enc["input_ids"], subs[:2])
    torch.testing.assert_close(scores.sum(-1), torch.ones(scores.shape[:-1]))


def test_batch_padding_does_not_change_scores(default_model, default_extractor):
    tok = default_model.tokenizer
    subs = default_extractor.extract_relational_subspaces(2, top_k=2)
    short = tok(["The cat sat."], return_tensors="pt")
    both = tok(
        ["The cat sat.", "A much longer sentence follows here, with many more words."],
        return_tensors="pt",
        padding=True,
    )
    s1, _, _ = default_extractor.relation_scores(short["input_ids"], subs)
    s2, _, _ = default_extractor.relation_scores(both["input_ids"], subs, attention_mask=both["attention_mask"])
    n = short["input_ids"].shape[1]
    torch.testing.assert_close(s2[:, 0, :n, :n], s1[:, 0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ex, s: ex.identify_relation_types([], s), "token_ids"),
        (lambda ex, s: ex.identify_relation_types([1, 2, 10**7], s), "token_ids must lie in"),
        (lambda ex, s: ex.identify_relation_types([1, -3], s), "token_ids must lie in"),
        (lambda ex, s: ex.extract_relational_subspaces(6), "layer_idx must be an int in [0, 5]"),
        (lambda ex, s: ex.extract_relational_subspaces(-1), "layer_idx"),
        (lambda ex, s: ex.extract_relational_subspaces(0, top_k=13), "top_k must be an int in [1, 12]"),
        (lambda ex, s: ex.extract_relational_subspaces(0, top_k=0), "top_k"),
        (
            lambda ex, s: ex.identify_relation_types([101, 2000, 102], s, threshold=1.5),
            "threshold must be a number in [0, 1]",
        ),
        (lambda ex, s: ex.identify_relation_types([101, 2000, 102], s, threshold=-0.1), "threshold"),
        (lambda ex, s: ex.identify_relation_types([101, 2000, 102], ["L0H1k8"]), "subspaces"),
        (lambda ex, s: ex.project_token_embeddings([101, 102], s, mode="bogus"), "mode"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(default_extractor, call, message):
    subs = default_extractor.extract_relational_subspaces(0, top_k=1)
    with pytest.raises(ValueError) as err:
        call(default_extractor, subs)
    assert message in str(err.value)


def test_unsupported_architecture_names_supported_ones():
    from transformers import AutoModel, GPTNeoConfig

    model = AutoModel.from_config(
        GPTNeoConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, attention_types=[[["global"], 1]])
    )
    with pytest.raises(UnsupportedArchitectureError) as err:
        KnowledgeGraphExtractor(model)
    assert "gpt_neo" in str(err.value) and "bert" in str(err.value) and "llama" in str(err.value)


def test_unknown_model_name_is_a_clear_error():
    from pipeline.errors import ModelNotFoundError
    from pipeline.model.adapters import load_model

    with pytest.raises(ModelNotFoundError) as err:
        load_model("no-such-org/no-such-model")
    assert "unknown model 'no-such-org/no-such-model'" in str(err.value)


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2"])
def test_stopping_the_forward_pass_early_records_the_same_residuals(family):
    model = tiny(family)
    ex = KnowledgeGraphExtractor(model)
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))
    full = capture(ex.adapter, ids, torch.ones_like(ids), layers=[0])
    early = capture(ex.adapter, ids, torch.ones_like(ids), layers=[0], stop_early=True)
    torch.testing.assert_close(early.residuals[0], full.residuals[0], atol=0, rtol=0)
    assert (early.rotary is None) == (full.rotary is None)
    if full.rotary is not None:
        torch.testing.assert_close(early.rotary[0], full.rotary[0], atol=0, rtol=0)
    # the layers above were not run: a hook on the last layer's Q/K input never fires
    seen = []
    handle = ex.adapter.qk_input_module(1).register_forward_pre_hook(lambda *a: seen.append(1))
    try:
        capture(ex.adapter, ids, torch.ones_like(ids), layers=[0], stop_early=True)
    finally:
        handle.remove()
    assert not seen
