"""DFPIR: degradation-aware feature perturbation for all-in-one image restoration.

Packages, lowest first (each imports only from those before it): ``errors``, ``schema``,
``device`` (modules); ``models``; ``data``; ``prompts``; ``config``; ``loading`` (a module);
``restore``; ``blind``; ``eval``; ``train``, ``app``, ``analysis``; ``perf``; ``cli``.
"""

from . import _compat

_compat.install()
