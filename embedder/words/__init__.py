"""Words in: word-vector files and their cache (``vectors``), the MiniLM encoder (``minilm``), the
query's word space and parser (``space``), spelling suggestions (``spelling``), the shipped tag
vocabulary (``vocabulary``, data in ``data/``), the taggers' label names (``labels``, data only)
and the layer's error (``errors``). Imports nothing else of mre: no audio, no models."""
