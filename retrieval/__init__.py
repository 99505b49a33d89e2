"""mre.retrieval: open a store and search it — `from mre.retrieval import Library`."""
from mre.retrieval.library import Hit, Library, LibraryError, TagResult, default_store_path

__all__ = ["Library", "LibraryError", "Hit", "TagResult", "default_store_path"]
