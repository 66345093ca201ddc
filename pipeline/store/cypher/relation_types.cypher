// What it answers: every relation type in the graph with its human label (if one was stored),
//   how many span pairs it links, how much evidence supports it, and its score range.
// Parameters: none.
// In Neo4j Browser: just run it.
MATCH ()-[r:RELATES]->()
WITH r.type AS type, count(r) AS edges, sum(r.count) AS evidence,
     max(r.score_max) AS score_max, avg(r.score_mean) AS score_mean
OPTIONAL MATCH (t:RelationType {id: type})
RETURN type, coalesce(t.label, '') AS label, edges, evidence, score_max, score_mean
ORDER BY edges DESC, evidence DESC, type
