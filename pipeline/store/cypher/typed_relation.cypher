// What it answers: the strongest span pairs of one typed relation, as paths for Browser's graph view:
//   (head)-[:OBJ]->(dependent), strongest first, with the calibrated probability, the evidence count and
//   the unit behind it. The same as typing, for 'obj':
//   MATCH p=(h:Span)-[r:OBJ]->(d:Span) RETURN p ORDER BY r.score_max DESC LIMIT 25
// Parameters: $relation (string) a dependency relation name such as 'obj', 'nsubj' or 'nmod:poss'
//             (its relationship type is the name upper-cased, ':' -> '_'); $limit (integer) how many pairs.
// In Neo4j Browser:
//   :param relation => 'obj'
//   :param limit => 25
MATCH p = (h:Span)-[r:$(toUpper(replace($relation, ':', '_')))]->(d:Span)
WHERE r.type = $relation
WITH p, h, r, d
ORDER BY r.score_max DESC, r.count DESC, h.key, d.key
LIMIT $limit
RETURN p, h.text AS head, r.type AS relation, d.text AS dependent, r.score_max AS probability,
       r.score_mean AS mean_probability, r.count AS count, r.unit AS unit
