"""Where the heavy stages run: ``local`` (this process, the default, needs no Ray) or ``ray``.

``ray`` renders the generation batches on a Ray cluster through Ray Data (``ray_generation``);
it needs the optional extra: ``pip install 'isekai-gen[ray]'``.
"""

from __future__ import annotations

from ..errors import UserError

ENGINES = ("local", "ray")
RAY_EXTRA = "pip install 'isekai-gen[ray]'"


def require_ray():
    """The ``ray`` module with Ray Data, or one line naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Core alone lacks it)
    except ImportError:
        raise UserError(f"engine ray: Ray Data is not installed; install it with {RAY_EXTRA}") from None
    return ray
