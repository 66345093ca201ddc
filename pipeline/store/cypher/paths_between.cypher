// What it answers: the shortest chains of relations (ignoring direction, at most 4 hops, no span visited
//   twice) linking two spans, e.g. how "Pierre Curie" connects to "polonium"; each step shows its direction and
//   type. Every aggregate edge counts (typed relations such as :OBJ, and :RELATES), not the per-document EVIDENCE
//   nor the facts (FACT, FACT_EVIDENCE; see facts_between).
// Parameters: $source (string) and $target (string): span text, case-insensitive, or key;
//             $limit (integer) how many paths (at most 10 are searched).
// In Neo4j Browser:
//   :param source => 'Pierre Curie'
//   :param target => 'polonium'
//   :param limit => 5
MATCH (a:Span) WHERE a.key = $source OR toLower(a.text) = toLower($source)
MATCH (b:Span) WHERE b.key = $target OR toLower(b.text) = toLower($target)
WITH a, b WHERE a <> b
MATCH p = SHORTEST 10 (a)((:Span)-[:!EVIDENCE&!FACT&!FACT_EVIDENCE]-(:Span)){1,4}(b)
WHERE all(n IN nodes(p) WHERE single(m IN nodes(p) WHERE m = n))
WITH p, length(p) AS hops,
     reduce(total = 0.0, r IN relationships(p) | total + r.score_max) / length(p) AS mean_score
RETURN [n IN nodes(p) | n.text] AS texts,
       [n IN nodes(p) | n.key] AS keys,
       [r IN relationships(p) | startNode(r).text + ' -[' + r.type + ']-> ' + endNode(r).text] AS steps,
       hops,
       mean_score
ORDER BY hops, mean_score DESC, keys
LIMIT $limit
