// What it answers: the facts that link two entities (or any two spans) directly, in either direction:
//   each row a path (subject)-[:FACT]->(object) with its predicate, direction ('forward': the first span
//   is the subject; 'backward': it is the object), probability, kind and evidence count.
// Parameters: $source (string) and $target (string): span text, case-insensitive, or key.
// In Neo4j Browser:
//   :param source => 'Marie Curie'
//   :param target => 'the Nobel Prize in Physics'
MATCH (a:Span) WHERE a.key = $source OR toLower(a.text) = toLower($source)
MATCH (b:Span) WHERE b.key = $target OR toLower(b.text) = toLower($target)
WITH a, b WHERE a <> b
MATCH p = (a)-[f:FACT]-(b)
RETURN p,
       startNode(f).text AS subject,
       f.predicate AS predicate,
       endNode(f).text AS object,
       CASE WHEN startNode(f) = a THEN 'forward' ELSE 'backward' END AS direction,
       f.probability_max AS probability,
       f.fact_kind AS kind,
       f.count AS count
ORDER BY probability DESC, predicate, direction
