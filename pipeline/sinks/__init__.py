"""Where an ingest run writes: graph files, Neo4j, or anything that implements ``Sink``.

A new sink is one new file here with a class that has the four methods of ``pipeline.sinks.base.Sink``.
"""

from __future__ import annotations

from pipeline.sinks.base import Sink
from pipeline.sinks.files import FileSink
from pipeline.sinks.neo4j import Neo4jSink

__all__ = ["FileSink", "Neo4jSink", "Sink"]
