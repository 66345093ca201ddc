// What it answers: one entity (or any span) with its strongest relations, as a graph for Browser's
//   graph view: each row a path (entity)-[:RELATES]-(other), strongest first, plus its type and score.
// Parameters: $entity (string) the span's text, case-insensitive, or its key ("entity:PERSON:marie curie");
//             $limit (integer) how many relations.
// In Neo4j Browser:
//   :param entity => 'Marie Curie'
//   :param limit => 25
MATCH (e:Span)
WHERE e.key = $entity OR toLower(e.text) = toLower($entity)
MATCH p = (e)-[r:RELATES]-(other:Span)
WITH p, r, other
ORDER BY r.score_max DESC, r.count DESC, r.type, other.key
LIMIT $limit
RETURN p, other.text AS other, r.type AS type, r.label AS label, r.score_max AS score_max
