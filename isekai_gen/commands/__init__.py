"""One click command per module; each module exposes ``command``. ``cli.py`` collects them."""
