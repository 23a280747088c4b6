"""ONNX export of a segmenter, and an onnxruntime-backed segmenter with the same interface.

The exported graph maps the normalised network input (L, or L/a/b, see :mod:`endopat.colour`) to
the instrument probability ``(B, 1, H, W)`` of a binary model, or every class's ``(B, C, H, W)`` of a
multi-class one; batch, height and width are dynamic (height and width must stay multiples of 16; a
ViT's are fixed at the training size). Everything needed to preprocess and read the output — input
mode, training size, threshold, the class list, endopat version — is stored in the model's metadata,
so an ``.onnx`` file is as self-describing as a checkpoint.

``predict`` on a CPU runs this export through onnxruntime by default (2-3x the PyTorch speed in
bench/predict.py), exporting a checkpoint once and caching it beside it (:func:`cached_onnx`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
import torch

from endopat.archs import ARCHS
from endopat.config import ModelConfig
from endopat.errors import EndopatError, describe, reading
from endopat.labels import Labels
from endopat.segmenter import Predictor, Segmenter, output_probabilities
from endopat.io import atomic_path, file_digest, output_file


class _Probability(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module, labels: Labels):
        super().__init__()
        self.unet, self.labels = unet, labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return output_probabilities(self.unet(x), self.labels)


PARITY_TOLERANCE = 1e-4  # max |probability difference| allowed between ONNX and PyTorch


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17) -> Path:
    """Export, then check parity: the ONNX graph run by onnxruntime must give the PyTorch model's
    probabilities within :data:`PARITY_TOLERANCE` on a random batch at the training size, or the
    file is not written. The metadata records the checkpoint's sha256 (see :func:`cached_onnx`)."""
    import onnx  # optional (the export extra)
    from torch.onnx import _constants

    low, high = _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    if not low <= opset <= high:
        raise EndopatError(f"--opset {opset}: this torch exports ONNX opsets {low} to {high}")
    output_file(out)
    seg = Segmenter(checkpoint)
    h, w = seg.cfg.image_size
    example = torch.zeros(1, seg.cfg.in_channels, h, w)
    # a ViT's position embeddings are traced at the training grid: its height and width stay fixed
    # (predict always feeds the training size)
    axes = {0: "batch"} if ARCHS[seg.cfg.arch].patch else {0: "batch", 2: "height", 3: "width"}
    out = Path(out)
    with atomic_path(out) as tmp:
        try:
            torch.onnx.export(
                _Probability(seg.model, seg.labels).eval(), (example,), str(tmp), dynamo=False,
                opset_version=opset, input_names=["input"], output_names=["probability"],
                dynamic_axes={"input": axes, "probability": axes},
            )
        except Exception as err:  # noqa: BLE001 - an operator this opset lacks: the user's choice, one line
            raise EndopatError(f"{checkpoint}: torch cannot export this model at opset {opset} "
                               f"({describe(err)}); try a newer --opset") from None
        model = onnx.load(str(tmp))
        meta = {"endopat": json.dumps({"model": seg.cfg.model_dump(mode="json"), "threshold": seg.threshold,
                                       "labels": seg.labels.to_dict(),
                                       "preprocess": seg.checkpoint.preprocess,
                                       "endopat_version": seg.checkpoint.endopat_version,
                                       "provenance": seg.checkpoint.provenance,
                                       "checkpoint_sha256": file_digest(checkpoint)}, default=str)}
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(model, str(tmp))
        _check_parity(seg, tmp, checkpoint)
    return out


def _check_parity(seg, onnx_path: Path, checkpoint: str | Path) -> None:
    h, w = seg.cfg.image_size
    x = torch.rand(2, seg.cfg.in_channels, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = OnnxSegmenter(onnx_path).forward(x)
    gap = float((ours - seg.forward(x).cpu()).abs().max())
    if not gap <= PARITY_TOLERANCE:
        raise EndopatError(f"{checkpoint}: ONNX export differs from PyTorch by {gap:.2e} "
                           f"(> {PARITY_TOLERANCE:g}); use --backend torch")


def _recorded_digest(path: Path) -> str | None:
    import onnx  # optional (the export extra)

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props["endopat"]).get("checkpoint_sha256")
    except Exception:  # unreadable or foreign: export again
        return None


def cached_onnx(checkpoint: str | Path, log=None) -> Path:
    """The checkpoint's ONNX export, made once and kept next to it as ``<checkpoint>.onnx``; remade
    when the checkpoint changed (its sha256 is in the export's metadata). A read-only folder gets
    the export in the system's temporary folder instead."""

    checkpoint = Path(checkpoint)
    digest = file_digest(checkpoint)
    target = checkpoint.with_name(checkpoint.name + ".onnx")
    if not os.access(checkpoint.parent, os.W_OK):
        target = Path(tempfile.gettempdir()) / f"endopat-{digest[:16]}.onnx"
    if target.is_file() and _recorded_digest(target) == digest:
        return target
    if log:
        log(f"exporting {checkpoint.name} to ONNX for CPU inference: {target}")
    return export_onnx(checkpoint, target)


class OnnxSegmenter(Predictor):
    """Like :class:`endopat.segmenter.Segmenter`, running the exported graph with onnxruntime."""

    def __init__(self, path: str | Path, providers: list[str] | None = None):
        import onnxruntime as ort  # optional (the export extra)

        path = Path(path)
        if not path.is_file():
            raise EndopatError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        # the intra-op pool busy-waits between runs by default, taking the cores that decoding and
        # encoding threads of ``predict`` need; off, the video pipeline runs faster
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = torch.get_num_threads()
        with reading(path, "ONNX model"):  # onnxruntime raises its own exception types
            self.session = ort.InferenceSession(str(path), options,
                                                providers=providers or ["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map.get("endopat")
            if meta is None:
                raise EndopatError(f"{path}: no endopat metadata (export it with `endopat export`)")
            self.info = info = json.loads(meta)
            self.cfg = ModelConfig.model_validate(info["model"])
            self.threshold = float(info["threshold"])
            self.labels = Labels.from_dict(info.get("labels"), str(path))
            if ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]) != (
                    ["input"], ["probability"]):
                raise EndopatError(f"{path}: not an endopat export (its graph does not map 'input' to 'probability')")
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with reading(self.path, "ONNX model"):  # a graph that loads can still fail on a frame
            (prob,) = self.session.run(["probability"], {"input": x.numpy()})
        return torch.from_numpy(prob)
