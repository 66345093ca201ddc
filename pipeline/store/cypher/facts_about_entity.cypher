// What it answers: everything stated about an entity (or any span), in both directions: one row per fact
//   subject -[predicate]-> object that it takes part in, most probable first, with its role (subject or
//   object), the other span, the fact's kind (action, oblique, copula, possession), its probability (the
//   product of the probabilities of the arcs it rests on), mean probability, evidence count and documents.
// Parameters: $entity (string) the span's text, case-insensitive, or its key ("entity:PERSON:marie curie");
//             $limit (integer) how many facts.
// In Neo4j Browser:
//   :param entity => 'Marie Curie'
//   :param limit => 25
MATCH (e:Span)
WHERE e.key = $entity OR toLower(e.text) = toLower($entity)
MATCH (e)-[f:FACT]-(other:Span)
RETURN e.text AS entity,
       CASE WHEN startNode(f) = e THEN 'subject' ELSE 'object' END AS role,
       startNode(f).text AS subject,
       f.predicate AS predicate,
       endNode(f).text AS object,
       other.key AS other_key,
       f.fact_kind AS kind,
       f.probability_max AS probability,
       f.probability_mean AS mean_probability,
       f.count AS count,
       f.documents AS documents
ORDER BY probability DESC, count DESC, predicate, other_key, role
LIMIT $limit
