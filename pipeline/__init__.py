"""qkgraph: knowledge graphs from the relations a transformer's query-key circuits compute between tokens."""

__version__ = "0.1.0"
