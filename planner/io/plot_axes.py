"""Axis labelling shared by the product's plots (`planner profile show`, `planner simulate --png`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axis import Axis

# A log axis spanning fewer decades than this gets labels between its decades (2, 3, 5 x 10^k): a decode step of 9-20
# ms fell between two decade ticks and showed one label, "10^1" (found by hand at stop 54), a TTFT CDF of 60-2,000 ms
# two (100, 1000); beyond it the decades alone are labelled (more would collide).
FEW_DECADES = 2.0


def label_log_axis(axis: Axis, lo: float, hi: float) -> None:
    """Readable labels on a log `axis` whose view is [lo, hi], as plain numbers ("10", "15", "1000"): every decade, and
    between them 1.2 ... 8 x 10^k within one decade, 2, 3, 5 x 10^k within FEW_DECADES."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else math.inf
    if decades < 1:  # within one decade (9-20 ms): 10, 12, 15, 20, 25, 30, 40, 50, 60, 80
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)))
    elif decades < FEW_DECADES:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(NullFormatter())
