"""Making training data for mre's models: tagged corpora rendered offline (`mre.training.corpus`)."""
