"""Cost and speed: FLOPs and throughput (``benchmark``), the one-command device report
(``device_report``) and the comparison with the release's own model (``release_compare``)."""

from .benchmark import (
    BenchResult,
    benchmark,
    count_params,
    forward_flops,
    markdown_table,
)
from .device_report import (
    ReportSettings,
    run_report,
)
from .release_compare import (
    RELEASE_CLASS,
    Comparison,
    check_settings,
    compare_with_release,
    load_release_class,
)

__all__ = [
    "BenchResult",
    "Comparison",
    "RELEASE_CLASS",
    "ReportSettings",
    "benchmark",
    "check_settings",
    "compare_with_release",
    "count_params",
    "forward_flops",
    "load_release_class",
    "markdown_table",
    "run_report",
]
