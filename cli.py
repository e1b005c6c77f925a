"""Run ``isekai-gen`` from a source checkout without installing it: ``python cli.py ...``.

The click application is ``isekai_gen.cli`` (installed inside the package, so that a ``cli.py`` in
a user's working directory can never shadow it); ``python -m isekai_gen`` is the installed route.
"""

from isekai_gen.cli import main

if __name__ == "__main__":
    main()
