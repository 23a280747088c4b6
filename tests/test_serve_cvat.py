"""The CVAT auto-annotation function, checked with cvat-sdk's own types and its driver's checks
(the label mapping and shape validation ``cvat-cli task auto-annotate`` runs)."""

import logging

import numpy as np
import pytest
from PIL import Image

cvataa = pytest.importorskip("cvat_sdk.auto_annotation")
from cvat_sdk import models  # noqa: E402
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl  # noqa: E402
from cvat_sdk.masks import decode_mask  # noqa: E402

from endopat.checkpoints import save_checkpoint  # noqa: E402
from endopat.config import ModelConfig  # noqa: E402
from endopat.segmenter import Segmenter  # noqa: E402
from endopat.networks import build_unet  # noqa: E402
from endopat.serve import cvat  # noqa: E402

CFG = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


@pytest.fixture
def function(tmp_path):
    import torch

    torch.manual_seed(3)
    net = build_unet(CFG)
    seg = dict(kind="segmenter", model_cfg=CFG, state_dict=net.state_dict())
    save_checkpoint(tmp_path / "probe.pt", **seg)
    prob = Segmenter(tmp_path / "probe.pt").probabilities([np.asarray(_image())])[0]
    # a threshold at the median: the untrained net's mask covers half of the frame, so it is checkable
    save_checkpoint(tmp_path / "best.pt", threshold=float(np.median(prob)), **seg)
    return cvat.create(checkpoint=str(tmp_path / "best.pt"), backend="torch"), tmp_path / "best.pt"


def _mapper(spec, conv_mask_to_poly=False):
    kind = "polygon" if conv_mask_to_poly else "mask"  # what a CVAT task's label is for each
    dataset = [models.Label(id=7, name="instrument", type=kind, attributes=[], sublabels=[])]
    return _AnnotationMapper(logging.getLogger("test"), spec.labels, dataset, allow_unmatched_labels=False,
                             conv_mask_to_poly=conv_mask_to_poly)


def _image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (30, 40, 3), np.uint8))


def test_the_spec_names_the_model_s_classes_as_mask_labels(function):
    fn, _ = function
    assert isinstance(fn.spec, cvataa.DetectionFunctionSpec)
    assert [(label.name, label.type) for label in fn.spec.labels] == [("instrument", "mask")]


def test_detected_masks_pass_the_driver_s_checks_and_equal_predict_s(function):
    fn, ckpt = function
    seg = Segmenter(ckpt)
    image = _image()
    shapes = fn.detect(_DetectionFunctionContextImpl(frame_name="a.png"), image)
    want = seg.probabilities([np.asarray(image)])[0] >= seg.threshold
    assert 0.2 < want.mean() < 0.8
    tags, mapped = _mapper(fn.spec).validate_and_remap(shapes, 5)
    assert tags == [] and len(mapped) == 1
    for shape in mapped:
        assert (shape.label_id, shape.frame, shape.type.value) == (7, 5, "mask")
        assert np.array_equal(decode_mask(shape.points, image_width=40, image_height=30), want)


def test_with_masks_converted_to_polygons_the_driver_accepts_them(function):
    pytest.importorskip("skimage")
    fn, _ = function
    shapes = fn.detect(_DetectionFunctionContextImpl(frame_name="a.png", conv_mask_to_poly=True), _image())
    _, mapped = _mapper(fn.spec, conv_mask_to_poly=True).validate_and_remap(shapes, 0)
    assert mapped and all(s.type.value == "polygon" and len(s.points) >= 6 for s in mapped)


def test_a_three_class_model_s_spec_and_shapes_carry_each_class(tmp_path):
    import torch

    from endopat.labels import Labels

    torch.manual_seed(4)
    labels = Labels(("background", "liver", "tool"))
    save_checkpoint(tmp_path / "mc.pt", kind="segmenter", model_cfg=CFG, labels=labels.to_dict(),
                    state_dict=build_unet(CFG, out_channels=3).state_dict())
    fn = cvat.create(checkpoint=str(tmp_path / "mc.pt"), backend="torch")
    assert [label.name for label in fn.spec.labels] == ["liver", "tool"]
    image = _image(1)
    ids = Segmenter(tmp_path / "mc.pt").predict_ids([np.asarray(image)])[0]
    assert (ids > 0).any()  # the untrained net predicts some foreground: the shapes are checkable
    dataset = [models.Label(id=10 + k, name=n, type="mask", attributes=[], sublabels=[]) for k, n in
               enumerate(("liver", "tool"))]
    mapper = _AnnotationMapper(logging.getLogger("test"), fn.spec.labels, dataset, allow_unmatched_labels=False,
                               conv_mask_to_poly=False)
    _, mapped = mapper.validate_and_remap(fn.detect(_DetectionFunctionContextImpl(frame_name="a.png"), image), 0)
    assert {s.label_id for s in mapped} == {10 + k for k, c in enumerate((1, 2)) if (ids == c).any()}
    for shape in mapped:
        want = ids == (1 if shape.label_id == 10 else 2)
        assert np.array_equal(decode_mask(shape.points, image_width=40, image_height=30), want)
