"""Link-context learning episodes (ISEKAI-10 and ISEKAI-pair) cut from the kept images."""

from .stage import run_episodes

__all__ = ["run_episodes"]
