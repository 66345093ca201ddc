// What it answers: the documents and sentences behind a relation between two spans: one row per
//   evidence sentence, with its score, the unit behind it (typed relations; '' for untyped subspaces) and
//   the character offsets of both mentions in the document.
// Parameters: $source (string) and $target (string): span text, case-insensitive, or key (direction
//             source -> target: head -> dependent for typed relations); $type (string or null) a relation
//             such as 'obj' or 'L2H8k12', null for all.
// In Neo4j Browser:
//   :param source => 'Marie Curie'
//   :param target => 'radium'
//   :param type => null
MATCH (a:Span)-[e:EVIDENCE]->(b:Span)
WHERE (a.key = $source OR toLower(a.text) = toLower($source))
  AND (b.key = $target OR toLower(b.text) = toLower($target))
  AND ($type IS NULL OR e.type = $type)
MATCH (d:Document {id: e.doc_id})
UNWIND range(0, size(e.scores) - 1) AS i
OPTIONAL MATCH (s:Sentence {doc_id: e.doc_id, index: e.sentences[i]})
RETURN e.type AS type,
       d.id AS document,
       d.source AS source,
       e.sentences[i] AS sentence_index,
       s.text AS sentence,
       e.scores[i] AS score,
       coalesce(e.units[i], '') AS unit,
       [e.source_starts[i], e.source_ends[i]] AS source_offsets,
       [e.target_starts[i], e.target_ends[i]] AS target_offsets
ORDER BY score DESC, document, sentence_index, type
