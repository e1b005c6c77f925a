"""``python -m isekai_gen`` (and ``torchrun -m isekai_gen``): the ``isekai-gen`` command."""

from isekai_gen.cli import main

main(prog_name="isekai-gen")
