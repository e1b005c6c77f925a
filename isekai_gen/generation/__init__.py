"""Text-to-image generation: pipeline loading (real and tiny), broken-image checks, the stage."""

from .stage import GenerationResult, initial_round, run_generation

__all__ = ["GenerationResult", "initial_round", "run_generation"]
