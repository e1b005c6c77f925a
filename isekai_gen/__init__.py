"""isekai-gen: evaluation data for multimodal in-context learning."""

__version__ = "0.1.0"
