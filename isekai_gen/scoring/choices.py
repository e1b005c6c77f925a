"""Option choices shared by the library and the CLI (no heavy imports here)."""

FORMATS = ("auto", "jsonl", "csv", "manyicl-pickle", "lcl")
POLICIES = ("drop", "wrong", "manyicl")
