"""The word layer's one error, in a module of its own so that both its loaders (the word-vector
files in ``vectors``, the MiniLM encoder in ``minilm``) raise it without importing each other."""

__all__ = ["WordVectorError"]


class WordVectorError(Exception):
    """Word vectors could not be loaded or looked up; the message is one line for the user."""
