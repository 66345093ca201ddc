// What it answers: what a fact rests on: one row per evidence sentence of subject -[predicate]-> object,
//   with the document, the sentence, the fact's probability and kind, the predicate's offsets, and the typed
//   arcs behind it (relation, unit, probability, head and dependent words with their offsets; a parser's arcs
//   have unit '') plus the units alone.
// Parameters: $subject (string) and $object (string): span text, case-insensitive, or key;
//             $predicate (string or null) the predicate, null for every fact between the two.
// In Neo4j Browser:
//   :param subject => 'Marie Curie'
//   :param object => 'the Nobel Prize in Physics'
//   :param predicate => 'win'
MATCH (a:Span)-[e:FACT_EVIDENCE]->(b:Span)
WHERE (a.key = $subject OR toLower(a.text) = toLower($subject))
  AND (b.key = $object OR toLower(b.text) = toLower($object))
  AND ($predicate IS NULL OR e.predicate = $predicate)
MATCH (d:Document {id: e.doc_id})
UNWIND range(0, size(e.probabilities) - 1) AS i
OPTIONAL MATCH (s:Sentence {doc_id: e.doc_id, index: e.sentences[i]})
WITH e, d, s, i, [j IN range(0, size(e.arc_items) - 1) WHERE e.arc_items[j] = i] AS arcs
RETURN e.predicate AS predicate,
       d.id AS document,
       d.source AS source,
       e.sentences[i] AS sentence_index,
       s.text AS sentence,
       e.probabilities[i] AS probability,
       e.kinds[i] AS kind,
       [e.predicate_starts[i], e.predicate_ends[i]] AS predicate_offsets,
       [j IN arcs | {relation: e.arc_relations[j], unit: e.arc_units[j], probability: e.arc_probabilities[j],
                     head: e.arc_heads[j], dependent: e.arc_dependents[j],
                     head_offsets: [e.arc_head_starts[j], e.arc_head_ends[j]],
                     dependent_offsets: [e.arc_dependent_starts[j], e.arc_dependent_ends[j]]}] AS arcs,
       [j IN arcs WHERE e.arc_units[j] <> '' | e.arc_units[j]] AS units
ORDER BY probability DESC, document, sentence_index, predicate
