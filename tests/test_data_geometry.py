import numpy as np
import pytest
import torch
from PIL import Image

from endopat.config import ModelConfig
from endopat.data.frames import build_store
from endopat.data.geometry import aspect_size, content_box, fit_image, fit_mask, restore
from endopat.data.labeled import load_pairs
from endopat.data.readers.generic import read as read_generic
from endopat.data.video import write_video
from endopat.metrics import dice_iou
from endopat.labels import BINARY
from endopat.segmenter import Predictor
from endopat.predict import predict_images

H, W = 1080, 1920  # a full-HD laparoscopic frame


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Red tissue with a grey disk (the 'instrument'): a circle stays a circle only if the aspect
    ratio is kept."""
    yy, xx = np.mgrid[:H, :W]
    mask = (yy - 540) ** 2 + (xx - 1300) ** 2 < 300**2
    image = np.empty((H, W, 3), np.uint8)
    image[:] = (190, 60, 50)
    image[mask] = (150, 150, 150)
    return image, mask


def extent(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def grey(images: np.ndarray) -> np.ndarray:
    """Where the grey disk is (low saturation, not black padding)."""
    im = images.astype(int)
    return (im.max(-1) - im.min(-1) < 30) & (im.mean(-1) > 60)


@pytest.mark.parametrize("src, dst, box", [
    ((1080, 1920), (64, 112), (0, 0, 63, 112)),     # nearly the same aspect: one row of pad
    ((1080, 1920), (128, 128), (28, 0, 72, 128)),   # 16:9 into a square: bars above and below
    ((480, 640), (256, 256), (32, 0, 192, 256)),
    ((640, 480), (256, 256), (0, 32, 256, 192)),    # portrait: bars left and right
])
def test_letterbox_centres_the_scaled_frame(src, dst, box):
    assert tuple(vars(content_box(src, dst)).values()) == box


def test_stretch_fills_the_whole_network_image():
    assert content_box((1080, 1920), (128, 128), "stretch") == content_box((5, 5), (128, 128), "stretch")


def test_letterbox_keeps_a_circle_round_and_pads_black():
    image, mask = scene()
    fitted, fmask = fit_image(image, (128, 128)), fit_mask(mask, (128, 128))
    h, w = extent(fmask)
    assert abs(h - w) <= 1 and fitted[:28].max() == 0 and not fmask[:28].any()
    assert (grey(fitted) == fmask).mean() > 0.99  # image and mask stay registered


def test_stretch_squashes_the_circle():
    _, mask = scene()
    h, w = extent(fit_mask(mask, (128, 128), "stretch"))
    assert w / h == pytest.approx(1080 / 1920, abs=0.05)


def test_restore_maps_a_letterboxed_map_back_onto_the_full_frame():
    _, mask = scene()
    small = torch.from_numpy(fit_mask(mask, (64, 112)).astype(np.float32))[None]
    back = restore(small, (H, W))[0].numpy() >= 0.5
    _, iou = dice_iou(torch.from_numpy(back)[None], torch.from_numpy(mask)[None])
    assert back.shape == (H, W) and float(iou[0]) > 0.95


@pytest.mark.parametrize("src, size", [((1080, 1920), (256, 448)), ((480, 640), (256, 336)),
                                       ((480, 854), (256, 448)), ((1920, 1080), (448, 256))])
def test_aspect_size_keeps_the_source_aspect_in_multiples_of_16(src, size):
    assert aspect_size(src) == size


def test_a_full_hd_frame_and_its_mask_keep_their_geometry_from_video_to_predicted_mask(tmp_path):
    image, mask = scene()
    size = (64, 112)
    # frames: a 1920x1080 video into a store at the network size
    write_video(tmp_path / "v.mp4", [image] * 2)
    stored = build_store(tmp_path / "v.mp4", tmp_path / "store", size)[0]
    h, w = extent(grey(stored))
    assert abs(h - w) <= 2 and h == pytest.approx(600 * 63 / 1080, abs=2)
    # training: the labeled pair, placed by the same rule, stays registered
    (tmp_path / "lab" / "images").mkdir(parents=True)
    (tmp_path / "lab" / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "lab" / "images" / "f.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "lab" / "masks" / "f.png")
    images, masks = load_pairs(read_generic(tmp_path / "lab"), size)
    assert (grey(images[0]) == masks[0]).mean() > 0.98
    assert abs(np.subtract(*extent(masks[0]))) <= 1
    # predict: a 'network' that finds grey pixels by their a channel (the letterbox pad is grey
    # too, so a pad leaking into the output would show), written at the frame's full resolution

    class GreyFinder(Predictor):
        threshold, labels = 0.5, BINARY
        cfg = ModelConfig(image_size=size, input="Lab")

        def forward(self, x):
            return (x[:, 1:2].abs() < 0.15).float()

    (written,) = predict_images(GreyFinder(), [tmp_path / "lab" / "images" / "f.png"], tmp_path / "out")
    predicted = np.asarray(Image.open(written)) > 127
    _, iou = dice_iou(torch.from_numpy(predicted)[None], torch.from_numpy(mask)[None])
    assert predicted.shape == (H, W) and float(iou[0]) > 0.95


@pytest.mark.parametrize("fit", ["letterbox", "stretch"])
def test_fitting_on_the_device_matches_pil_within_a_few_grey_levels(fit):
    from endopat.data.geometry import fit_images_on

    image, _ = scene()
    rng = np.random.default_rng(0)
    noisy = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    want = fit_image(noisy, (96, 128), fit)
    got = fit_images_on([noisy], (96, 128), fit, torch.device("cpu"))[0].numpy()
    diff = np.abs(got.astype(int) - want.astype(int))
    assert got.shape == want.shape and diff.mean() < 1.0 and np.percentile(diff, 99) <= 4
    assert np.array_equal(got.sum(-1) == 0, want.sum(-1) == 0) if fit == "letterbox" else True  # the same bars
