// What it answers: the strongest relations of one entity (or any span), in both directions,
//   strongest first: relation type and label, the other span, max/mean score, evidence count, and the
//   unit behind a typed relation (typed: head -> dependent with calibrated probabilities; untyped
//   subspaces: attention shares, unit '').
// Parameters: $entity (string) the span's text, case-insensitive, or its key ("entity:PERSON:marie curie");
//             $limit (integer) how many rows.
// In Neo4j Browser:
//   :param entity => 'Marie Curie'
//   :param limit => 10
MATCH (e:Span)
WHERE e.key = $entity OR toLower(e.text) = toLower($entity)
MATCH (e)-[r:!EVIDENCE&!FACT&!FACT_EVIDENCE]-(other:Span)
RETURN e.text AS entity,
       CASE WHEN startNode(r) = e THEN 'out' ELSE 'in' END AS direction,
       r.type AS type,
       r.label AS label,
       other.text AS other,
       other.key AS other_key,
       r.score_max AS score_max,
       r.score_mean AS score_mean,
       r.count AS count,
       size(r.documents) AS documents,
       r.unit AS unit
ORDER BY score_max DESC, count DESC, type, other_key, direction
LIMIT $limit
