// What it answers: pairs of entities mentioned together in several documents (document-level
//   co-occurrence, independent of attention relations), most shared documents first.
// Parameters: $min_documents (integer) the least number of shared documents; $limit (integer).
// In Neo4j Browser:
//   :param min_documents => 2
//   :param limit => 25
MATCH (a:Span {kind: 'entity'})-[:MENTIONED_IN]->(d:Document)<-[:MENTIONED_IN]-(b:Span {kind: 'entity'})
WHERE a.key < b.key
WITH a, b, collect(d.id) AS docs
WHERE size(docs) >= $min_documents
RETURN a.text AS entity_a, a.label AS label_a, b.text AS entity_b, b.label AS label_b,
       size(docs) AS documents, docs AS document_ids
ORDER BY documents DESC, entity_a, entity_b
LIMIT $limit
