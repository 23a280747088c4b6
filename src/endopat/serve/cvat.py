"""A CVAT auto-annotation function (cvat-sdk's detection-function interface: a ``spec`` of labels
and ``detect(context, image)``) over an endopat segmenter: one mask shape per class a frame shows.

    cvat-cli --server-host http://localhost:8080 task auto-annotate TASK_ID \\
        --function-module endopat.serve.cvat -p checkpoint=str:runs/ft/best.pt

CVAT matches the spec's label names with the task's labels (the model's class names: ``instrument``
for a binary model).
``examples/cvat-nuclio/`` deploys the same function as a Nuclio serverless function for CVAT's UI."""

from __future__ import annotations

import numpy as np

from endopat.predict import load_model
from endopat.serve.labels import foreground


class EndopatFunction:
    """The detection function; ``checkpoint`` (a .pt or .onnx) is the function's parameter."""

    def __init__(self, checkpoint: str, backend: str = "auto"):
        import cvat_sdk.auto_annotation as cvataa  # cvat-sdk: imported when the function is made

        self._model = load_model(checkpoint, backend=backend)
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(name, k, type="mask") for k, name in enumerate(foreground(self._model.labels))])

    def masks(self, image) -> list[np.ndarray]:
        """One boolean mask per class of the spec, at the image's size (what ``predict`` writes)."""
        ids = self._model.predict_ids([np.asarray(image.convert("RGB"))])[0]
        return [ids == i for i in self._model.labels.foreground]

    def detect(self, context, image) -> list:
        import cvat_sdk.auto_annotation as cvataa
        from cvat_sdk.masks import encode_mask

        shapes = []
        for k, mask in enumerate(self.masks(image)):
            if not mask.any():
                continue
            if context.conv_mask_to_poly:
                shapes += [cvataa.polygon(k, points) for points in _polygons(mask)]
            else:
                shapes.append(cvataa.mask(k, encode_mask(mask)))
        return shapes


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a mask as CVAT polygon points (x1, y1, x2, y2, ...), via scikit-image."""
    from skimage import measure  # cvat-sdk[pytorch] brings it; only for CVAT's "convert masks to polygons"

    out = []
    for contour in measure.find_contours(np.pad(mask, 1).astype(float), 0.5):
        contour = measure.approximate_polygon(contour - 1, tolerance=1.0)
        if len(contour) >= 3:
            out.append(np.clip(contour[:, ::-1], 0, None).ravel().tolist())
    return out


create = EndopatFunction
