// What it answers: the size of the graph in one row: documents, cited sentences, spans by kind,
//   mentions, entity spans by label, aggregated relations (typed ones such as :NSUBJ and :OBJ, and untyped
//   :RELATES), per-document evidence, relation types, facts (:FACT), their predicates and evidence.
// Parameters: none.
// In Neo4j Browser: just run it.
CALL () { MATCH (d:Document) RETURN count(d) AS documents }
CALL () { MATCH (s:Sentence) RETURN count(s) AS sentences }
CALL () {
  MATCH (s:Span)
  RETURN count(s) AS spans, coalesce(sum(s.mentions), 0) AS mentions,
         count(CASE WHEN s.kind = 'entity' THEN 1 END) AS entities,
         count(CASE WHEN s.kind = 'noun_chunk' THEN 1 END) AS noun_chunks,
         count(CASE WHEN s.kind = 'word' THEN 1 END) AS words,
         count(CASE WHEN s.kind = 'pronoun' THEN 1 END) AS pronouns
}
CALL () {
  OPTIONAL MATCH (s:Span {kind: 'entity'})
  WITH s.label AS label, count(s) AS n WHERE label IS NOT NULL
  ORDER BY n DESC, label
  RETURN collect({label: label, spans: n}) AS entity_labels
}
CALL () {
  MATCH (:Span)-[r:!EVIDENCE&!FACT&!FACT_EVIDENCE]->(:Span)
  RETURN count(r) AS relations, count(DISTINCT r.type) AS relation_types, coalesce(sum(r.count), 0) AS evidence,
         count(CASE WHEN type(r) <> 'RELATES' THEN 1 END) AS typed_relations,
         count(CASE WHEN type(r) = 'RELATES' THEN 1 END) AS untyped_relations
}
CALL () {
  MATCH (:Span)-[f:FACT]->(:Span)
  RETURN count(f) AS facts, count(DISTINCT f.predicate) AS predicates, coalesce(sum(f.count), 0) AS fact_evidence
}
CALL () { MATCH ()-[e:EVIDENCE]->() RETURN count(e) AS evidence_edges }
CALL () { MATCH ()-[e:FACT_EVIDENCE]->() RETURN count(e) AS fact_evidence_edges }
CALL () { MATCH ()-[m:MENTIONED_IN]->() RETURN count(m) AS mention_edges }
RETURN documents, sentences, spans, mentions, entities, noun_chunks, words, pronouns, entity_labels,
       relations, typed_relations, untyped_relations, relation_types, evidence, evidence_edges, mention_edges,
       facts, predicates, fact_evidence, fact_evidence_edges
