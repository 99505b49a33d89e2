"""Training mre's models, on top of the library (it imports embedder, never the reverse):
the paper's model's data preparation (``inputs``), training loop (``loop``) and the `mre train`
run with its report (``run``); labelled datasets (``datasets``) and the metrics they are scored
with (``metrics``, shared with the benchmarks); tagged corpora rendered offline (``corpus``) and
the shipped corpus model's build (``model_build``, ``choose_backbone``)."""
