import copy
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from endopat.checkpoints import save_checkpoint
from endopat.cli import main
from endopat.config import ModelConfig
from endopat.errors import EndopatError
from endopat.networks import build_unet

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# the project's small real samples, read where they lie (never copied into the repository);
# ENDOPAT_SHARED_DATA points elsewhere, e.g. for a clone that does not sit beside shared/
SHARED_DATA = Path(os.environ.get("ENDOPAT_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@contextmanager
def _threads(n: int):
    """``n`` threads for torch, and OMP_NUM_THREADS so that make_fabric keeps them. Bit-identity of two
    runs holds at one thread: with two, oneDNN's convolutions give the first training of a network
    shape in a process other low bits now and then (docs/design.md, "Resume"), which a chaotic
    training then grows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", str(n))
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    with _threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a module whose module-scoped fixtures are compared bit for bit too."""
    with _threads(1):
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real samples not found at {SHARED_DATA}")
    return SHARED_DATA


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (for the servers tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVE_CFG = dict(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


@pytest.fixture
def world(tmp_path):
    """For the server tests: a tiny segmenter (best.pt), a labeled folder of three videos whose
    masks are the frames' red channel above 127, and frames of a fourth video to label."""
    import numpy as np

    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.io import write_png
    from endopat.networks import build_unet

    torch.manual_seed(0)
    cfg = ModelConfig(**SERVE_CFG)
    save_checkpoint(tmp_path / "best.pt", kind="segmenter", model_cfg=cfg, state_dict=build_unet(cfg).state_dict())
    rng = np.random.default_rng(0)
    for v in range(3):
        for f in range(2):
            img = rng.integers(0, 255, (30, 40, 3), np.uint8)
            write_png(tmp_path / "labeled" / "images" / f"v{v}_f{f:03d}.png", img)
            write_png(tmp_path / "labeled" / "masks" / f"v{v}_f{f:03d}.png", (img[..., 0] > 127) * np.uint8(255))
    for k in range(3):
        write_png(tmp_path / "frames" / f"v9_f{k:03d}.png", rng.integers(0, 255, (30, 40, 3), np.uint8))
    (tmp_path / "outside.png").write_bytes((tmp_path / "frames" / "v9_f000.png").read_bytes())
    return tmp_path


def accepted_label_studio_export(tasks, who=1):
    """A Label Studio export of ``tasks`` whose annotator accepted every pre-annotation as it was."""
    out = []
    for i, t in enumerate(tasks):
        result = t.get("predictions", [{"result": []}])[0]["result"]
        out.append({"id": i + 1, "data": t["data"], "annotations": [{
            "id": 10 + i, "completed_by": who, "result": result, "was_cancelled": False,
            "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"}]})
    return out


def three_class_folder(out):
    """Synthetic frames whose instrument masks are split into two classes (left and right halves),
    beside a classes.txt, with a few pixels of the ignore id; ``out/synth/unlabeled`` holds a video."""
    import numpy as np

    from endopat.data.synth import SynthSpec, generate
    from endopat.io import read_image, write_png

    generate(out / "synth", SynthSpec(size=32, videos=3, unlabeled_videos=1, frames=4, label_every=2))
    for split in ("train", "val", "test"):
        for mask in sorted((out / "synth" / "labeled" / split / "masks").glob("*.png")):
            ids = (read_image(mask, mode="L") > 127).astype(np.uint8)
            ids[:, 16:] *= 2
            ids[0, :4] = 255
            write_png(out / split / "masks" / mask.name, ids)
            write_png(out / split / "images" / mask.name, read_image(mask.parents[1] / "images" / mask.name))
    (out / "classes.txt").write_text("0 background\n1 left\n2 right\n255 ignore\n")
    return out


# what a field of endopat's own files may hold instead of what endopat wrote: gone, or another type
FIELD_VALUES = [KeyError, None, "x", -1, float("nan"), [3], {"a": 1}, {"names": ["a"]}]


def replaced(record: dict, path: tuple[str, ...], value) -> dict:
    """A deep copy of ``record`` with the field at ``path`` deleted (``KeyError``) or set to ``value``."""
    record = copy.deepcopy(record)
    *parents, last = path
    inner = record
    for key in parents:
        inner = inner[key]
    if value is KeyError:
        del inner[last]
    else:
        inner[last] = value
    return record


def json_fields(value, at: tuple = ()) -> list[tuple]:
    """Every field of a JSON value, nested ones too, as paths for :func:`replaced` (a list longer
    than 3, such as an RLE or a polygon, counts as one field)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) and len(
        value) <= 3 else ()
    return [f for k, v in items for f in [(*at, k), *json_fields(v, (*at, k))]]


def ends_in_one_line(call, path: Path, case: str) -> bool:
    """``call()`` returns (True) or raises one EndopatError line naming ``path`` (False); any other
    exception fails the test, naming the case."""
    try:
        call()
        return True
    except EndopatError as err:
        assert "\n" not in str(err).strip() and str(path) in str(err), f"{case}: {err}"
    except Exception as err:  # noqa: BLE001 - the point of the tests that call it
        pytest.fail(f"{case}: {err.__class__.__name__}: {err}")
    return False


# a tiny network and a tiny synthetic data set, for tests of real code paths at toy sizes
TINY = {"features": [4, 4, 8, 8, 16, 4], "image_size": [32, 32]}
TINY_MODEL = f"model:\n  features: {TINY['features']}\n  image_size: {TINY['image_size']}\n"


def run_cli(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["endopat", *map(str, args)])
    try:
        main()
    except SystemExit as exc:
        return exc.code or 0
    return 0


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    with pytest.MonkeyPatch.context() as mp:
        assert run_cli(mp, "synth", out, "--size", 64, "--videos", 3, "--unlabeled-videos", 1,
                       "--frames", 6, "--label-every", 2, "--no-progress") == 0
    return out


# fine-tuning in a real process, killed with SIGKILL at the start of a given epoch (argv[3]; 0: never)
KILLABLE_FINETUNE = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
import endopat.finetune as ft
from endopat.config import FinetuneConfig
from endopat.data.readers import open_labeled
data, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}  # more settings (tests/test_semi.py)
epoch, calls = ft._train_epoch, []
def epoch_or_die(*a, **k):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return epoch(*a, **k)
ft._train_epoch = epoch_or_die
parts = open_labeled(data)
cfg = FinetuneConfig.model_validate({"model": %(model)r, "epochs": 5, "min_samples_per_epoch": 6,
    "batch_size": 4, "augment": {"rotate": True, "gain": 0.2}, "early_stop_patience": None, **extra})
ft.finetune(parts["train"], parts["val"], out, cfg, progress=False, log=lambda *a: None)
""" % {"model": TINY}


def run_script(script, *args):
    # one thread, as the script asks: make_fabric sets torch's threads to the cores unless OMP_NUM_THREADS
    # is set, and with 2 threads on a loaded machine two uninterrupted runs already differ by ~1e-5
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def same_weights(a, b):
    wa, wb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# a study of the tiny network on generated data: every row kind, a few steps (tests of the study and its report)
TINY_STUDY = {
    "name": "tiny",
    "synth": [{"out": "data/t", "site": "target", "size": 64, "videos": 3, "unlabeled_videos": 1, "frames": 8,
               "label_every": 2},
              {"out": "data/o", "site": "other", "size": 64, "videos": 3, "unlabeled_videos": 0, "frames": 4,
               "label_every": 2}],
    "labeled": {"path": "data/t/labeled"},
    "fractions": ["1", "1/2"],
    "subsets": 2,
    "unlabeled": {"target": "data/t/unlabeled"},
    "extra_labeled": {"other": {"path": "data/o/labeled"}},
    "methods": [{"name": "baseline"}, {"name": "PAT", "pretrain": "target"},
                {"name": "PAT-Ext", "pretrain": "target", "supervised": "other"},
                {"name": "PAT-inpaint", "pretrain": "target", "task": "inpaint"}],
    "model": {"features": [4, 4, 8, 8, 16, 4], "image_size": [32, 32]},
    "pretrain": {"steps": 2, "batch_size": 2, "discriminator": {"width": 0.125}},
    "finetune": {"epochs": 2, "min_samples_per_epoch": 4},
    "supervised": {"epochs": 1, "min_samples_per_epoch": 4},
    "overlays": 2,
}


# a tiny binary segmenter and a tiny three-class one, untrained (the predict tests compare their
# outputs with a direct forward pass)
PREDICT_CFG = dict(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(**PREDICT_CFG))
    with torch.no_grad():  # bias the last layer so that some pixels are predicted foreground
        unet.final_conv.bias.copy_(torch.tensor([0.0, 0.02]))
    path = tmp_path_factory.mktemp("m") / "seg.pt"
    return save_checkpoint(path, kind="segmenter", model_cfg=ModelConfig(**PREDICT_CFG), state_dict=unet.state_dict())


def random_images(n, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def three_class_path(tmp_path_factory):
    from endopat.labels import Labels

    torch.manual_seed(1)
    unet = build_unet(ModelConfig(**PREDICT_CFG), out_channels=3)
    path = tmp_path_factory.mktemp("m3") / "seg3.pt"
    return save_checkpoint(path, kind="segmenter", model_cfg=ModelConfig(**PREDICT_CFG), state_dict=unet.state_dict(),
                           labels=Labels(("background", "liver", "tool")).to_dict())


def direct_masks(model_path, frames):
    """The masks of a direct forward pass; each has both classes, so a comparison with it can fail."""
    from endopat.segmenter import Segmenter

    seg = Segmenter(model_path)
    masks = [p >= seg.threshold for p in seg.probabilities(frames)]
    assert all(0.05 < m.mean() < 0.95 for m in masks), [m.mean() for m in masks]
    return masks


def slow_or_shuffled_video_store(tmp_path, shuffled, store=None):
    """A store (at ``store``; default ``tmp_path/store``) of one video whose frames move one pixel
    a frame, or the same frames shuffled (frames in ``tmp_path/frames``)."""
    from endopat.data.frames import build_store
    from endopat.io import write_png

    from PIL import Image

    coarse = np.random.default_rng(0).integers(0, 255, (4, 12, 3), np.uint8)  # smooth: a shift changes little
    scene = np.asarray(Image.fromarray(coarse).resize((96, 32), Image.BILINEAR))
    frames = [scene[:, t : t + 32] for t in range(60)]
    order = np.random.default_rng(1).permutation(60) if shuffled else range(60)
    for k, t in enumerate(order):
        write_png(tmp_path / "frames" / f"vid_f{k:03d}.png", frames[t])
    return build_store(tmp_path / "frames", store or tmp_path / "store", (32, 32), log=lambda *a: None)
