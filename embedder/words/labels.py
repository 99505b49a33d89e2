"""The musicnn taggers' label names: data, no code.

They are words first: the word layer builds MiniLM's vocabulary from them (words.vectors) and the
held-out tag list keeps clear of them (training.corpus.held_out); the model registry
(models.registry) pairs each list with the weights whose outputs it names. Living here, below
both, the word layer never imports the audio models' registry.
"""

__all__ = ["MSD_LABELS", "MTT_LABELS"]

# Label lists copied from musicnn/configuration.py (musicnn 0.1.0), order = output index.
# MSD labels keep their Last.fm spelling ('Mellow', 'Hip-Hop', 'House', 'Progressive rock').
MTT_LABELS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)
