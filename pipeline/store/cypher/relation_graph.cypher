// What it answers: the strongest relations as a graph for Browser's graph view, of the whole graph or
//   around one span: each row a path (source)-[r]->(target), strongest first, plus its type and score. r is
//   every aggregate edge: a typed relation's own type (head -[:OBJ]-> dependent, NSUBJ, NMOD_POSS, ...) or
//   RELATES for an untyped subspace id; the per-document EVIDENCE edges and the facts (FACT,
//   FACT_EVIDENCE; see facts_about_entity) are left out.
// Parameters: $entity (string or null) a span's text, case-insensitive, or its key ("entity:PERSON:marie curie"),
//             null for the whole graph; $limit (integer) how many relations.
// In Neo4j Browser:
//   :param entity => null
//   :param limit => 50
MATCH p = (a:Span)-[r:!EVIDENCE&!FACT&!FACT_EVIDENCE]->(b:Span)
WHERE $entity IS NULL
   OR a.key = $entity OR b.key = $entity
   OR toLower(a.text) = toLower($entity) OR toLower(b.text) = toLower($entity)
WITH p, a, r, b
ORDER BY r.score_max DESC, r.count DESC, r.type, a.key, b.key
LIMIT $limit
RETURN p, a.text AS source, r.type AS type, r.label AS label, b.text AS target, r.score_max AS score_max
