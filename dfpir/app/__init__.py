"""The local web page (Gradio, an optional extra): upload images, pick a degradation or
``auto``, download the results."""

from .server import (
    AUTO,
    DEMO_CHECKPOINT,
    ModelBundle,
    RestoredImage,
    blind_classifier,
    build_app,
    close_app,
    degradation_choices,
    load_bundle,
    require_gradio,
    restore_image,
    restore_uploads,
)

__all__ = [
    "AUTO",
    "DEMO_CHECKPOINT",
    "ModelBundle",
    "RestoredImage",
    "blind_classifier",
    "build_app",
    "close_app",
    "degradation_choices",
    "load_bundle",
    "require_gradio",
    "restore_image",
    "restore_uploads",
]
