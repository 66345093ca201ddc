// What it answers: the typed relations in the graph (dependency relations such as 'nsubj', 'obj'), one row
//   each: its relationship type, how many span pairs it links, how much evidence supports it, the mean
//   calibrated probability over all that evidence, the highest one, and the units behind it.
// Parameters: none.
// In Neo4j Browser: just run it.
MATCH (:Span)-[r:!EVIDENCE&!RELATES&!FACT&!FACT_EVIDENCE]->(:Span)
WITH r ORDER BY r.unit
WITH r.type AS relation, type(r) AS relationship, count(r) AS edges, sum(r.count) AS evidence,
     sum(r.score_mean * r.count) / sum(r.count) AS mean_probability, max(r.score_max) AS max_probability,
     collect(DISTINCT r.unit) AS units
RETURN relation, relationship, edges, evidence, mean_probability, max_probability, units
ORDER BY edges DESC, evidence DESC, relation
