"""The ManyICL benchmark datasets: one module per dataset, each exposing ``ADAPTER``.

Adding a dataset means adding one module here that defines an
``isekai_gen.manyicl.layouts.LayoutAdapter`` subclass and ``ADAPTER = ThatClass()``; it is
discovered automatically. The ten datasets of the ManyICL paper are listed in its Table 1 order,
any others after them by name. Names are matched case-insensitively, ignoring ``_``, ``-``,
``.`` and spaces, against each adapter's name, title and ``aliases`` (``terra_incognita``,
``TerraIncognita``, ``OxfordIIITPet``, ``UCMerced_LandUse``, ...).
"""

from isekai_gen.manyicl.adapters import TABLE1_ORDER, adapters, get_adapter, ordered_names

__all__ = ["TABLE1_ORDER", "adapters", "get_adapter", "ordered_names"]
