"""Exporters of a finished build: LCL annotation files, webdataset shards, Hugging Face folder."""
