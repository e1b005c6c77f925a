"""Interactive review of a build folder in the browser (``isekai-gen review``).

``app`` serves the pages and the JSON API, ``data`` digests the manifest for them (cached by its
modification time), ``decisions`` writes a reviewer's rejects into ``OUT/manual_rejects.txt``
after their history record (undo, recovery), ``pending`` is the rule that stages reading the kept
set refuse while decisions are pending, ``thumbs`` makes the JPEG thumbnails the pages and ``preview`` share.
"""
