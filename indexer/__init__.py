"""mre.indexer."""
