"""mre.retrieval."""
