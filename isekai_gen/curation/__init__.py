"""Human review decisions on a build, without the UI: what the review page, ``preview`` and the stages share.

``decisions`` writes a reviewer's rejects into ``OUT/manual_rejects.txt`` after their history
record (undo, recovery); ``pending`` is the rule that stages reading the kept set refuse while
decisions are pending; ``data`` digests the manifest for the pages (cached by its modification
time); ``thumbs`` makes the JPEG thumbnails the review pages and ``preview`` share.
"""
