"""`python -m mre.training.corpus build ...`: the same command as `mre corpus build`."""
from mre.cli.corpus import corpus

corpus(prog_name="python -m mre.training.corpus")
