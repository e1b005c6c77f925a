"""Shared fixtures. Tests never touch the network: the Hub is forced offline for the session."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def isekai_cache(tmp_path_factory):
    """A per-session cache folder for tiny pipelines, also handed to subprocesses via the env."""
    path = tmp_path_factory.mktemp("isekai-cache")
    os.environ["ISEKAI_GEN_CACHE"] = str(path)
    return path
