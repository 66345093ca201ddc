"""Stage 3, the model: architecture adapters, activations, factored QK circuits, the extractor."""
