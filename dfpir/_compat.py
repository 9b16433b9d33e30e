"""The import paths of 0.1 that moved in 0.2's package layout keep working for one release.

``import dfpir.evaluate`` (say) gives a module holding the names of its new home and warns with a
``DeprecationWarning`` naming that home. CHANGELOG.md lists every move. Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

#: old module -> the modules that now hold its names (the first is the one to import from)
MOVED: dict[str, tuple[str, ...]] = {
    "dfpir.allocator": ("dfpir.device",),
    "dfpir.benchmark": ("dfpir.perf.benchmark",),
    "dfpir.blind.config": ("dfpir.config.classifier",),
    "dfpir.blind.evaluation": ("dfpir.eval.blind",),
    "dfpir.device_report": ("dfpir.perf.device_report",),
    "dfpir.eval_loop": ("dfpir.eval.loop",),
    "dfpir.evaluate": ("dfpir.eval.evaluation",),
    "dfpir.inference": ("dfpir.restore.inference", "dfpir.device"),
    "dfpir.metrics": ("dfpir.eval.metrics",),
    "dfpir.onnx_export": ("dfpir.restore.onnx_export",),
    "dfpir.onnx_runtime": ("dfpir.restore.onnx_runtime",),
    "dfpir.release_compare": ("dfpir.perf.release_compare",),
    "dfpir.report": ("dfpir.eval.report",),
    "dfpir.tables": ("dfpir.eval.tables",),
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of moved modules and fills them from the new ones."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 (the finder protocol)
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):  # noqa: ANN001
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        homes = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {homes[0]} in dfpir 0.2; the old path goes "
                      "in 0.3 (see CHANGELOG.md)", DeprecationWarning, stacklevel=2)
        for home in reversed(homes):
            new = importlib.import_module(home)
            module.__dict__.update({k: v for k, v in vars(new).items()
                                    if not k.startswith("__")})


def install() -> None:
    """Put the old-path finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
