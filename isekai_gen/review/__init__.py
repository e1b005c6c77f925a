"""Interactive review of a build folder in the browser (``isekai-gen review``).

``app`` serves the pages and the JSON API over ``curation`` (decisions, history, pending rule,
build view, thumbnails), which the stages below use too.
"""
