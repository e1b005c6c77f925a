"""Evaluation-harness exports: our ManyICL splits and ISEKAI episodes as lmms-eval tasks and VLMEvalKit TSVs.

The documents are `isekai-gen evaluate`'s own requests (``documents.py``); ``lmms_eval.py`` and
``vlmevalkit.py`` are export formats of the registry in ``isekai_gen.export.registry``;
``hooks.py`` is what an exported lmms-eval task folder's ``utils.py`` calls.
"""
