"""The models: what every model offers (``base``: the declared ``Model`` and ``WordModel``
protocols, ``QueryVector``), which exist (``registry``, data only; weights in ``embedder/weights/``), loading
one by name (``factory``), the musicnn port and its TF checkpoint reader (``musicnn``,
``tf_checkpoint``), the zero-shot models (``zeroshot``, ``corpus_model``), the paper's two-branch
model (``paper``) and its saved form (``trained``), how scores are shown and combined
(``scoring``) and tag vocabularies as rows of a model's space (``tag_space``).
Imports ``embedder.audio`` and ``embedder.words``, never the runner or anything above."""
