"""Facts: statements (subject, predicate, object) composed from the typed arcs of one sentence.

The composer is plain functions over word-to-word arcs (``Arc``), so any source of typed arcs can feed
it: the typed QK relations (ingestion), spaCy's parse (``spacy_arcs``, the supervised reference of
``qkgraph eval-facts``) or the gold trees of a treebank (``gold_arcs``, the facts a fact is scored
against). The rules, for one predicate word ``p``:

* **action**: a subject ``s`` (``nsubj`` or ``nsubj:pass`` of ``p``) and an object ``o`` (``obj`` or
  ``iobj`` of ``p``) give ``(s, predicate, o)``. "Marie Curie won the prize" -> (Curie, win, prize).
  A word with a ``case`` dependent of its own is not a subject (UD marks obliques and nominal
  modifiers with case, never a subject); of the other subject arcs, the most probable counts.
* **oblique**: a subject and an ``obl`` dependent ``o`` of ``p`` that has a ``case`` word ``c`` give
  ``(s, predicate + c, o)``: "She moved to Paris" -> (She, move to, Paris). An ``obl`` without a case
  word ("yesterday") states no relation between two things and gives nothing.
  An object that has a case word of its own is read as that oblique (UD puts no case word under an
  object; from typed arcs, "detonated a bomb outside a station" can come as obj(detonated, station)
  + case(station, outside)).
* **copula**: a subject of a ``p`` that has a ``cop`` dependent gives ``(s, be, p)``: "Curie was a
  physicist" -> (Curie, be, physicist); with a case word on ``p``, ``be`` + case: "She is in Paris"
  -> (She, be in, Paris). The predicate word is the copula.
* **possession**: an ``nmod:poss`` arc ``(Y -> X)`` gives ``(X, have, Y)``: "Curie's laboratory" ->
  (Curie, have, laboratory). It has no predicate word.

**Shared subjects** (as UD's enhanced graphs add them): a predicate with no subject arc of its own
takes one through the arc it hangs from. Through ``xcomp`` (a controlled clause) the controller is the
head's object if it has one ("asked me to sign the form" -> (me, sign, form)), else the head's subject
("decided to move the group" -> (I, move, group)); through ``conj`` it is the head's subject ("She
discovered radium and won the prize" -> (She, win, prize)). Chains are followed up to
``MAX_SHARING_DEPTH`` arcs; the fact rests on every arc of the chain too. A shared subject makes the
predicate passive only when ``p`` has an ``aux:pass`` of its own ("wants to be promoted").

The predicate is the lemma of ``p``, its particle (``compound:prt``: "set up") and the preposition;
a passive subject (``nsubj:pass``) makes it ``be`` + the participle as written ("be born in", "be
founded by"), because the lemma of "born" is "bear". Only nominal subjects and objects count in
the gold facts (``NOMINAL``); in the product a fact needs both words inside spans (graph nodes) with
different keys.

**Probability.** A fact is right only if every arc it rests on is right, so the composer scores it
with the product of its arcs' calibrated probabilities (subject arc, object or obl arc, case, cop,
particle). The product treats the arcs' errors as independent, and they are not: on EWT dev a fact
whose arcs multiply to 0.45 is right about 80% of the time. So the probability a fact claims in the
graph is the product passed through the model's *fact calibration map* (``calibrate_facts``: an
isotonic map, per fact kind, from the product to the rate of right facts, fitted on the selection documents by
``qkgraph eval-facts --write-calibration`` and kept in the label artifact; without a map, the
product). ``qkgraph eval-facts`` reports its reliability on the documents it was not fitted on.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.relations.calibration import isotonic_predict
from pipeline.types import FactArc, FactKind, Span, SpanFact, Word

SUBJECT_RELATIONS = ("nsubj", "nsubj:pass")
OBJECT_RELATIONS = ("obj", "iobj")
SHARING_RELATIONS = ("xcomp", "conj")
"""Arcs through which a predicate without a subject of its own gets one (see "Shared subjects")."""
FACT_RELATIONS = (
    *SUBJECT_RELATIONS,
    *OBJECT_RELATIONS,
    "obl",
    "case",
    "cop",
    "nmod:poss",
    "compound:prt",
    *SHARING_RELATIONS,
    "aux:pass",
)
"""The relations the composer reads; a typed relation set needs at least nsubj and obj for facts."""

MAX_SHARING_DEPTH = 8
"""The longest chain of xcomp / conj arcs a subject is passed down ("wants to try to start to ...")."""

NOMINAL = ("NOUN", "PROPN", "PRON", "NUM")
"""Universal POS tags of a subject or object word in the gold facts."""

FACT_SPAN_KINDS = ("entity", "noun_chunk", "pronoun")
"""The spans a fact can state something about: things, not the content-word nodes ("complicated")."""

FACT_ARC_FLOOR = 0.05
"""Arcs below this probability are not composed. Chosen on the selection half of EWT dev (70
documents, MiniLM): facts of arcs far below the edge threshold are still mostly right (the arcs'
probabilities are of a word pair in isolation; two arcs that compose into a fact support each other),
so the floor went down from 0.3 (precision 0.73, recall 0.205) to 0.05 (0.70, 0.309); below it
nothing changes (0.02: 0.69, 0.313). The fact calibration map turns the product into a probability."""


@dataclass(frozen=True)
class Arc:
    """A typed arc between two words (indices into the document's word list)."""

    head: int
    dependent: int
    relation: str
    probability: float = 1.0
    unit: str = ""


@dataclass(frozen=True)
class WordFact:
    """A fact between words (indices into the document's word list).

    ``predicate_word`` is -1 for possession; ``preposition`` is the case word's index or -1.
    """

    subject: int
    object: int
    predicate_word: int
    preposition: int
    predicate: str
    kind: FactKind
    probability: float
    arcs: tuple[Arc, ...]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def compose_facts(words: Sequence[Word], arcs: Iterable[Arc], floor: float = FACT_ARC_FLOOR) -> list[WordFact]:
    """Every fact the rules (module docstring) compose from ``arcs``, in word order.

    Arcs below ``floor`` and arcs between words of different sentences are ignored; when a word is
    the dependent of several arcs of the same relation (a case word of two heads), each head sees its
    own. A (subject, predicate, object) composed twice keeps its most probable composition.
    """
    deps: dict[int, dict[str, list[Arc]]] = {}
    for arc in arcs:
        if arc.probability < floor or arc.head == arc.dependent:
            continue
        if words[arc.head].sent != words[arc.dependent].sent:
            continue
        deps.setdefault(arc.head, {}).setdefault(arc.relation, []).append(arc)

    def best(head: int, relation: str) -> Arc | None:
        found = deps.get(head, {}).get(relation, [])
        return max(found, key=lambda a: (a.probability, -a.dependent)) if found else None

    # the arc each word hangs from through xcomp / conj (its best one), for shared subjects
    sharing: dict[int, Arc] = {}
    for rels in deps.values():
        for rel in SHARING_RELATIONS:
            for a in rels.get(rel, []):
                kept = sharing.get(a.dependent)
                if kept is None or (a.probability, -a.head) > (kept.probability, -kept.head):
                    sharing[a.dependent] = a

    def own_subject(p: int) -> Arc | None:
        # a predicate has one subject in a tree: its best one; a word with a case marker of its own
        # is an oblique or a nominal modifier, never a subject ("a piece on ... for al-Qaeda appeared")
        rels = deps.get(p, {})
        return max(
            (a for r in SUBJECT_RELATIONS for a in rels.get(r, []) if best(a.dependent, "case") is None),
            key=lambda a: (a.probability, -a.dependent),
            default=None,
        )

    def subject_of(p: int, depth: int) -> tuple[Arc | None, tuple[Arc, ...]]:
        """The subject arc of ``p`` and the sharing arcs it came down through (none: its own)."""
        own = own_subject(p)
        if own is not None:
            return own, ()
        link = sharing.get(p)
        if link is None or depth >= MAX_SHARING_DEPTH:
            return None, ()
        if link.relation == "xcomp":
            controller = best(link.head, "obj") or best(link.head, "iobj")
            if controller is not None:
                return controller, (link,)
        subj, via = subject_of(link.head, depth + 1)
        return (subj, (*via, link)) if subj is not None else (None, ())

    out: dict[tuple[int, str, int], WordFact] = {}

    def add(fact: WordFact) -> None:
        if fact.subject == fact.object:
            return
        key = (fact.subject, fact.predicate, fact.object)
        kept = out.get(key)
        if kept is None or fact.probability > kept.probability:
            out[key] = fact

    for p in sorted(deps):
        rels = deps[p]
        word = words[p]
        subj, via = subject_of(p, 0)
        if subj is not None:
            particle = best(p, "compound:prt")
            cop = best(p, "cop")
            if cop is not None:
                case = best(p, "case")
                pred = "be" + (f" {_norm(words[case.dependent].text)}" if case else "")
                support = (subj, *via, cop) + ((case,) if case else ())
                add(_fact(subj.dependent, p, cop.dependent, case, pred, "copula", support))
            else:
                # a subject shared through xcomp/conj says nothing of p's voice; p's own aux:pass does
                passive = best(p, "aux:pass") is not None if via else subj.relation == "nsubj:pass"
                verb = f"be {_norm(word.text)}" if passive else _norm(word.lemma or word.text)
                lead: tuple[Arc, ...] = (subj, *via)
                if particle is not None:
                    verb = f"{verb} {_norm(words[particle.dependent].text)}"
                    lead = (*lead, particle)
                for rel in OBJECT_RELATIONS:
                    obj = best(p, rel)
                    if obj is None:
                        continue
                    case = best(obj.dependent, "case")
                    if case is not None:
                        # UD puts no case word under an object: the word is the oblique its case marks
                        pred = f"{verb} {_norm(words[case.dependent].text)}"
                        add(_fact(subj.dependent, obj.dependent, p, case, pred, "oblique", (*lead, obj, case)))
                    else:
                        add(_fact(subj.dependent, obj.dependent, p, None, verb, "action", (*lead, obj)))
                for obl in rels.get("obl", []):
                    case = best(obl.dependent, "case")
                    if case is None:
                        continue
                    pred = f"{verb} {_norm(words[case.dependent].text)}"
                    add(_fact(subj.dependent, obl.dependent, p, case, pred, "oblique", (*lead, obl, case)))
        for poss in rels.get("nmod:poss", []):
            add(_fact(poss.dependent, p, -1, None, "have", "possession", (poss,)))
    return sorted(out.values(), key=lambda f: (f.subject, f.predicate_word, f.object, f.predicate))


FactCalibration = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""Fact calibration maps as isotonic knots (product -> probability right): one per calibration group
(``calibration_group``: the fact kind, or kind + ``":shared"``), and ``"*"`` for all kinds pooled (used
for a group without a map of its own or of its kind)."""


def calibration_group(kind: str, arcs: Iterable[Arc | FactArc]) -> str:
    """The calibration map a fact is read through: its kind, ``":shared"`` added when its subject
    came through xcomp / conj (such facts are right less often than others of their kind at the
    same product: on the selection half of EWT dev, 58% of the shared-subject actions against 86%)."""
    return f"{kind}:shared" if any(a.relation in SHARING_RELATIONS for a in arcs) else kind


def group_knots(knots: FactCalibration, group: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The map of a calibration group: its own, else its kind's, else the pooled one (``"*"``)."""
    return knots.get(group, knots.get(group.split(":", 1)[0], knots.get("*")))


def calibrate_facts(facts: Iterable[WordFact], knots: FactCalibration | None) -> list[WordFact]:
    """The facts with their probability passed through the map of their calibration group
    (``calibration_group``; None: unchanged)."""
    facts = list(facts)
    if not knots or not facts:
        return facts
    out = []
    for f in facts:
        k = group_knots(knots, calibration_group(f.kind, f.arcs))
        if k is None:
            out.append(f)
            continue
        m = float(isotonic_predict(k, np.asarray([f.probability], dtype=np.float64))[0])
        out.append(replace(f, probability=min(1.0, max(0.0, m))))
    return out


def _fact(
    subject: int,
    obj: int,
    predicate_word: int,
    case: Arc | None,
    predicate: str,
    kind: FactKind,
    support: tuple[Arc, ...],
) -> WordFact:
    probability = math.prod(a.probability for a in support)
    return WordFact(
        subject=subject,
        object=obj,
        predicate_word=predicate_word,
        preposition=case.dependent if case is not None else -1,
        predicate=predicate,
        kind=kind,
        probability=probability,
        arcs=support,
    )


def lift_facts(
    facts: Iterable[WordFact],
    words: Sequence[Word],
    word_span: Sequence[int],
    spans: Sequence[Span],
    threshold: float = 0.0,
    kinds: Collection[str] = FACT_SPAN_KINDS,
) -> list[SpanFact]:
    """The facts whose subject and object words lie in two spans with different keys, as SpanFacts.

    ``word_span``: the index of the span holding each word (-1: none). Only spans of ``kinds`` hold a
    fact's ends. A fact whose preposition lies inside its object's span is dropped: that case word
    marks a modifier within the span ("of" in "moved ... at the University of Paris"), not the link
    between the predicate and the span. Facts below ``threshold`` are dropped; the same (subject
    span, object span, predicate) keeps its most probable fact.
    """
    out: dict[tuple[int, int, str], SpanFact] = {}
    for f in facts:
        if f.probability < threshold:
            continue
        a, b = word_span[f.subject], word_span[f.object]
        if a < 0 or b < 0 or spans[a].key == spans[b].key:
            continue
        if spans[a].kind not in kinds or spans[b].kind not in kinds:
            continue
        if f.preposition >= 0 and word_span[f.preposition] == b:
            continue  # the case word is part of the object span
        pw = words[f.predicate_word] if f.predicate_word >= 0 else None
        fact = SpanFact(
            subject=a,
            object=b,
            predicate=f.predicate,
            probability=f.probability,
            sent_index=words[f.subject].sent,
            kind=f.kind,
            arcs=tuple(_fact_arc(arc, words) for arc in f.arcs),
            predicate_start=pw.start if pw else -1,
            predicate_end=pw.end if pw else -1,
        )
        key = (a, b, f.predicate)
        kept = out.get(key)
        if kept is None or fact.probability > kept.probability:
            out[key] = fact
    return sorted(out.values(), key=lambda f: (f.sent_index, f.subject, f.object, f.predicate))


def _fact_arc(arc: Arc, words: Sequence[Word]) -> FactArc:
    h, d = words[arc.head], words[arc.dependent]
    return FactArc(arc.relation, arc.unit, float(arc.probability), h.start, h.end, d.start, d.end)


# ── arcs from a parser ───────────────────────────────────────────────────────────────────────────

_SPACY_TO_UD = {
    "nsubj": "nsubj",
    "nsubjpass": "nsubj:pass",
    "dobj": "obj",
    "dative": "iobj",
    "poss": "nmod:poss",
    "prt": "compound:prt",
    "auxpass": "aux:pass",
    "xcomp": "xcomp",
    "conj": "conj",
}


def spacy_arcs(doc: object) -> list[Arc]:
    """The arcs of a spaCy parse that the composer reads, in UD terms (probability 1.0).

    spaCy's English models use ClearNLP labels, converted here: ``dobj`` -> obj, ``nsubjpass`` ->
    nsubj:pass, ``dative`` -> iobj, ``poss`` -> nmod:poss, ``prt`` -> compound:prt; a preposition
    (``prep``, head ``h``) with an object ``o`` (``pobj``) becomes obl(h, o) + case(o, prep) when ``h``
    is a verb (nmod otherwise, which the composer does not read); a copula (``attr`` or ``acomp`` of a
    form of *be*, with subject ``s``) becomes nsubj(attr, s) + cop(attr, be), as UD heads it. Word
    indices are spaCy token indices less the whitespace tokens before them (the order of
    ``pipeline.text.spans.document_words``). ``doc`` is a ``spacy.tokens.Doc``.
    """
    tokens = list(doc)  # type: ignore[call-overload]
    index: dict[int, int] = {}
    for t in tokens:
        if not t.is_space:
            index[t.i] = len(index)
    arcs: list[Arc] = []

    def arc(head: object, dep: object, relation: str) -> None:
        hi, di = index.get(head.i), index.get(dep.i)  # type: ignore[attr-defined]
        if hi is not None and di is not None and hi != di:
            arcs.append(Arc(hi, di, relation))

    for t in tokens:
        if t.is_space:
            continue
        head = t.head
        if t.dep_ in ("attr", "acomp") and head.lemma_ == "be":
            # "Curie was a physicist": UD heads the clause on the nominal, with the copula under it
            arc(t, head, "cop")
            for s in head.children:
                if s.dep_ in ("nsubj", "nsubjpass"):
                    arc(t, s, "nsubj")
            continue
        if (
            t.dep_ in ("nsubj", "nsubjpass")
            and any(c.dep_ in ("attr", "acomp") for c in head.children)
            and head.lemma_ == "be"
        ):
            continue  # re-headed on the attribute above
        if t.dep_ == "pobj" and head.dep_ == "prep":
            governor = head.head
            if governor.lemma_ == "be" and any(c.dep_ in ("nsubj", "nsubjpass") for c in governor.children):
                # "She is in Paris": nsubj(Paris, She), cop(Paris, is), case(Paris, in)
                arc(t, head, "case")
                arc(t, governor, "cop")
                for s in governor.children:
                    if s.dep_ in ("nsubj", "nsubjpass"):
                        arc(t, s, "nsubj")
            elif governor.pos_ in ("VERB", "AUX"):
                arc(governor, t, "obl")
                arc(t, head, "case")
            continue
        if t.dep_ == "pobj" and head.dep_ == "agent":
            arc(head.head, t, "obl")  # "founded by X": agent -> obl + case
            arc(t, head, "case")
            continue
        relation = _SPACY_TO_UD.get(t.dep_)
        if relation is not None:
            arc(head, t, relation)
    return arcs


def gold_facts(words: Sequence[Word], arcs: Iterable[Arc]) -> list[WordFact]:
    """The gold facts of a treebank's arcs: ``compose_facts`` with nominal subjects and objects only."""
    return [
        f
        for f in compose_facts(words, arcs, floor=0.0)
        if words[f.subject].pos in NOMINAL and words[f.object].pos in NOMINAL
    ]
