"""Fresh, private ISEKAI concept sets (`isekai-gen catalog invent`) and a check that a model does
not know them (`isekai-gen catalog probe`)."""

from .invent import invent_catalog
from .pool import load_pool

__all__ = ["invent_catalog", "load_pool"]
