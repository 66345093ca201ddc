// What it answers: who did what to whom for one predicate ('win', 'move to', 'be born in', 'be', 'have'):
//   each row a path (subject)-[:FACT]->(object) for Browser's graph view, most probable first, with the
//   fact's probability, evidence count, kind and documents. Predicates are lemmas as the documents state them.
// Parameters: $predicate (string) the predicate, case-insensitive; $limit (integer) how many facts.
// In Neo4j Browser:
//   :param predicate => 'win'
//   :param limit => 25
MATCH p = (s:Span)-[f:FACT]->(o:Span)
WHERE toLower(f.predicate) = toLower($predicate)
WITH p, s, f, o
ORDER BY f.probability_max DESC, f.count DESC, s.key, o.key
LIMIT $limit
RETURN p, s.text AS subject, f.predicate AS predicate, o.text AS object, f.probability_max AS probability,
       f.probability_mean AS mean_probability, f.count AS count, f.fact_kind AS kind, f.documents AS documents
