// What it answers: every relation type in the graph (typed relations such as 'obj', stored as :OBJ, and
//   untyped subspace ids such as 'L2H8k12', stored as :RELATES) with its relationship type, its human
//   label (if one was stored), how many span pairs it links, how much evidence supports it, and its scores.
// Parameters: none.
// In Neo4j Browser: just run it.
MATCH (:Span)-[r:!EVIDENCE&!FACT&!FACT_EVIDENCE]->(:Span)
WITH r.type AS type, type(r) AS relationship, count(r) AS edges, sum(r.count) AS evidence,
     max(r.score_max) AS score_max, avg(r.score_mean) AS score_mean
OPTIONAL MATCH (t:RelationType {id: type})
RETURN type, relationship, coalesce(t.label, '') AS label, edges, evidence, score_max, score_mean
ORDER BY edges DESC, evidence DESC, type
