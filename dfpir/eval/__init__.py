"""Evaluation: the one loop that restores and scores a test set (``loop``, shared with
validation during training), PSNR/SSIM (``metrics``), a config's test sets end to end
(``evaluation``), the results folder (``report``), the paper's tables (``tables``) and the blind
mode's scores (``blind``)."""

from .blind import (
    BlindImage,
    BlindReport,
    BlindSet,
    PromptMatrix,
    blind_markdown,
    evaluate_blind,
    prompt_matrix,
    write_blind_files,
    write_prompt_matrix,
)
from .evaluation import (
    evaluate,
)
from .loop import (
    ImageResult,
    MeanScores,
    Restored,
    SetResult,
    evaluate_set,
    restored_images,
)
from .metrics import (
    ImageMetrics,
    compute_metrics,
    psnr,
    psnr_torch,
    quantize_uint8,
    ssim,
    to_metric_array,
)
from .report import (
    EvalReport,
    report_dict,
    write_report,
)
from .tables import (
    NO_VALUE,
    PAPER_LAYOUTS,
    RESULTS_JSON,
    RunSummary,
    TableLayout,
    choose_paper_table,
    format_diff,
    format_score,
    load_paper_tables,
    load_run,
    markdown_table,
    paper_scores,
    rank_runs,
    results_table,
    table3_report,
)

__all__ = [
    "BlindImage",
    "BlindReport",
    "BlindSet",
    "EvalReport",
    "ImageMetrics",
    "ImageResult",
    "MeanScores",
    "NO_VALUE",
    "PAPER_LAYOUTS",
    "PromptMatrix",
    "RESULTS_JSON",
    "Restored",
    "RunSummary",
    "SetResult",
    "TableLayout",
    "blind_markdown",
    "choose_paper_table",
    "compute_metrics",
    "evaluate",
    "evaluate_blind",
    "evaluate_set",
    "format_diff",
    "format_score",
    "load_paper_tables",
    "load_run",
    "markdown_table",
    "paper_scores",
    "prompt_matrix",
    "psnr",
    "psnr_torch",
    "quantize_uint8",
    "rank_runs",
    "report_dict",
    "restored_images",
    "results_table",
    "ssim",
    "table3_report",
    "to_metric_array",
    "write_blind_files",
    "write_prompt_matrix",
    "write_report",
]
