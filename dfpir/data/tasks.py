"""The project-wide registry of task names and what each one means for the data.

Task names are fixed strings shared with the prompts and the evaluation code. Denoising is three
tasks, one per noise level, because the release trains and prompts each sigma separately.
"""

from __future__ import annotations

from .errors import DataError

TASKS: tuple[str, ...] = (
    "denoise_15",
    "denoise_25",
    "denoise_50",
    "derain",
    "dehaze",
    "deblur",
    "lowlight",
)
THREE_TASKS: tuple[str, ...] = ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze")
# The release's five-task setting still trains all three noise levels (it evaluates sigma 25 only).
FIVE_TASKS: tuple[str, ...] = TASKS
FAMILIES: tuple[str, ...] = ("denoise", "derain", "dehaze", "deblur", "lowlight")


def validate_task(task: str) -> str:
    """Return ``task`` if it is a registered task name, else raise listing the valid names."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; valid task names: {', '.join(TASKS)}")
    return task


def task_family(task: str) -> str:
    """The degradation family of ``task``: 'denoise' for every sigma, else the task itself."""
    validate_task(task)
    return "denoise" if task.startswith("denoise_") else task


def noise_sigma(task: str) -> int:
    """The Gaussian noise level (uint8 scale) of a denoising task, e.g. 25 for 'denoise_25'."""
    if task_family(task) != "denoise":
        raise DataError(f"task {task!r} is not a denoising task and has no noise sigma")
    return int(task.split("_", 1)[1])
