"""mre.embedder."""
