"""Every command, given a missing path, a folder where it wants a file, a file where it wants a
folder, or a file it cannot read (text where a checkpoint, image, video or YAML should be): one
line on stderr naming the path, exit code 2, and no file written. (As root every file is readable,
so "unreadable" is a file whose content is not what the command needs.) A number out of range (a
negative seed, a NaN threshold, a batch beyond any machine) is refused the same way."""

import socket
from pathlib import Path

import numpy as np
import pytest

from endopat.checkpoints import save_checkpoint
from endopat.config import ModelConfig
from endopat.io import write_png
from endopat.networks import build_unet

from conftest import run_cli

CFG = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


@pytest.fixture
def world(tmp_path):
    """Valid inputs (a checkpoint, images, a labeled folder, a config) and bad ones."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "text.txt").write_text("not what you wanted\n")
    (tmp_path / "clip.mp4").write_text("not a video\n")
    (tmp_path / "frame.png").write_text("not an image\n")
    (tmp_path / "model.pt").write_text("not a checkpoint\n")
    (tmp_path / "study.yaml").write_text("name: [unclosed\n")
    (tmp_path / "no-source.yaml").write_text(f"name: x\nlabeled: {{path: {tmp_path}/labeled}}\nunlabeled: {{target: {tmp_path}/nope}}\n"
                                            "methods: [{name: baseline}, {name: PAT, pretrain: target}]\n")
    (tmp_path / "junk.pth").write_text("junk")  # torch's weights-only unpickler raised a KeyError on it
    (tmp_path / "random.yaml").write_bytes(bytes(np.random.default_rng(7).integers(0, 256, 400, np.uint8)))
    save_checkpoint(tmp_path / "good.pt", kind="segmenter", model_cfg=CFG, state_dict=build_unet(CFG).state_dict())
    rng = np.random.default_rng(0)
    for v in range(3):  # three videos: enough for a group-disjoint split
        for f in range(2):
            write_png(tmp_path / "labeled" / "images" / f"v{v}_f{f:03d}.png", rng.integers(0, 255, (32, 32, 3), np.uint8))
            write_png(tmp_path / "labeled" / "masks" / f"v{v}_f{f:03d}.png", (rng.random((32, 32)) > 0.5) * np.uint8(255))
    write_png(tmp_path / "images" / "v1_f000.png", rng.integers(0, 255, (32, 32, 3), np.uint8))
    return tmp_path


CASES = {  # id: (args, the path the error must name); W = the world folder
    "frames/missing source": ("frames W/nope -o W/out", "nope"),
    "frames/text as video": ("frames W/clip.mp4 -o W/out", "clip.mp4"),
    "frames/file as output folder": ("frames W/images -o W/text.txt", "text.txt"),
    "inspect/missing": ("inspect W/nope", "nope"),
    "inspect/file as dataset folder": ("inspect W/text.txt", "text.txt"),
    "split/missing": ("split W/nope -o W/split.json", "nope"),
    "split/file as dataset folder": ("split W/text.txt -o W/split.json", "text.txt"),
    "split/folder as output file": ("split W/labeled -o W/dir", "dir"),
    "pretrain/missing source": ("pretrain -u W/nope -o W/out", "nope"),
    "pretrain/text as image": ("pretrain -u W/frame.png -o W/out", "frame.png"),
    "pretrain/file as run folder": ("pretrain -u W/images -o W/text.txt", "text.txt"),
    "pretrain/folder as config": ("pretrain -u W/images -o W/out -c W/dir", "dir"),
    "pretrain/text as encoder weights": ("pretrain -u W/images -o W/out --arch resnet18 --encoder-weights W/text.txt",
                                         "text.txt"),
    "finetune/missing data": ("finetune -d W/nope -o W/out", "nope"),
    "finetune/file as data folder": ("finetune -d W/text.txt -o W/out", "text.txt"),
    "finetune/text as init": ("finetune -d W/labeled -o W/out --init W/model.pt", "model.pt"),
    "finetune/folder as init": ("finetune -d W/labeled -o W/out --init W/dir", "dir"),
    "finetune/file as run folder": ("finetune -d W/labeled -o W/text.txt", "text.txt"),
    "finetune/text as encoder weights": ("finetune -d W/labeled -o W/out --arch resnet18 --encoder-weights "
                                         "W/text.txt", "text.txt"),
    "finetune/'junk' as encoder weights": ("finetune -d W/labeled -o W/out --arch resnet18 --encoder-weights "
                                           "W/junk.pth", "junk.pth"),
    "finetune/random bytes as config": ("finetune -d W/labeled -o W/out -c W/random.yaml", "random.yaml"),
    "evaluate/missing model": ("evaluate W/nope.pt -d W/labeled -o W/m.csv", "nope.pt"),
    "evaluate/folder as model": ("evaluate W/dir -d W/labeled -o W/m.csv", "dir"),
    "evaluate/text as model": ("evaluate W/model.pt -d W/labeled -o W/m.csv", "model.pt"),
    "evaluate/file as data folder": ("evaluate W/good.pt -d W/text.txt -o W/m.csv", "text.txt"),
    "evaluate/folder as output file": ("evaluate W/good.pt -d W/labeled -o W/dir", "dir"),
    "predict/missing model": ("predict W/nope.pt W/images -o W/out", "nope.pt"),
    "predict/text as model": ("predict W/model.pt W/images -o W/out", "model.pt"),
    "predict/missing source": ("predict W/good.pt W/nope -o W/out --backend torch", "nope"),
    "predict/text as image": ("predict W/good.pt W/frame.png -o W/out --backend torch", "frame.png"),
    "predict/file as output folder": ("predict W/good.pt W/images -o W/text.txt --backend torch", "text.txt"),
    "suggest/missing source": ("suggest W/nope -n 1 -o W/out", "nope"),
    "suggest/text as model": ("suggest W/images -n 1 -o W/out --model W/model.pt", "model.pt"),
    "suggest/file as output folder": ("suggest W/images -n 1 -o W/text.txt", "text.txt"),
    "export/missing model": ("export W/nope.pt --onnx W/m.onnx", "nope.pt"),
    "export/text as model": ("export W/model.pt --onnx W/m.onnx", "model.pt"),
    "export/folder as output file": ("export W/good.pt --onnx W/dir", "dir"),
    "weights/missing file": ("weights W/nope.pth", "nope.pth"),
    "weights/folder as file": ("weights W/dir", "dir"),
    "weights/text as weights": ("weights W/text.txt", "text.txt"),
    "study/missing config": ("study W/nope.yaml -o W/out", "nope.yaml"),
    "study/folder as config": ("study W/dir -o W/out", "dir"),
    "study/broken YAML": ("study W/study.yaml -o W/out", "study.yaml"),
    "study/missing unlabeled source": ("study W/no-source.yaml -o W/out", "nope: not found (unlabeled 'target'"),
    "report/missing run": ("report W/nope", "nope"),
    "report/file as run folder": ("report W/text.txt", "text.txt"),
    "synth/file as output folder": ("synth W/text.txt --no-progress", "text.txt"),
    "serve/missing model": ("serve W/nope.pt --state W/state", "nope.pt"),
    "serve/text as model": ("serve W/model.pt --state W/state", "model.pt"),
    "serve/missing labeled folder": ("serve W/good.pt --labeled W/nope --state W/state", "nope"),
    "serve/file as state folder": ("serve W/good.pt --state W/text.txt", "text.txt"),
}


BAD_VALUES = {  # id: (args, what the error must name): a number out of range is one line, before any work
    "synth/negative seed": ("synth W/out --seed -1 --no-progress", "seed"),
    "split/negative seed": ("split W/labeled -o W/split.json --seed -1", "seed"),
    "split/seed beyond numpy's": ("split W/labeled -o W/split.json --seed 99999999999999999999", "seed"),
    "split/NaN test fraction": ("split W/labeled -o W/split.json --test-fraction nan", "test_fraction"),
    "split/no subsets": ("split W/labeled -o W/split.json --subsets 0", "subsets"),
    "pretrain/seed beyond Lightning's": ("pretrain -u W/images -o W/out --seed 99999999999", "seed"),
    "pretrain/more nodes than any cluster": ("pretrain -u W/images -o W/out --num-nodes 99999999999999999999",
                                             "num_nodes"),
    "finetune/negative seed": ("finetune -d W/labeled -o W/out --seed -1", "seed"),
    "finetune/a batch beyond any machine": ("finetune -d W/labeled -o W/out --batch-size 99999999999999999999",
                                            "batch_size"),
    "predict/NaN threshold": ("predict W/good.pt W/images -o W/out --backend torch --threshold nan", "--threshold"),
    "predict/threshold of 1": ("predict W/good.pt W/images -o W/out --backend torch --threshold 1", "--threshold"),
    "predict/no batch": ("predict W/good.pt W/images -o W/out --backend torch --batch-size 0", "--batch-size"),
    "suggest/negative seed": ("suggest W/images -n 1 -o W/out --seed -1", "seed"),
    "suggest/NaN fps": ("suggest W/images -n 1 -o W/out --fps nan", "--fps"),
    "suggest/negative gap": ("suggest W/images -n 1 -o W/out --min-gap -1", "--min-gap"),
    "export/an opset torch lacks": ("export W/good.pt --onnx W/m.onnx --opset 0", "--opset"),
    "frames/every 0th frame": ("frames W/clip.mp4 -o W/out --every 0", "--every"),
    "frames/NaN fps": ("frames W/clip.mp4 -o W/out --fps nan", "--fps"),
    "serve/a port beyond TCP's": ("serve W/good.pt --state W/state --port 99999", "--port"),
    "serve/a host not this machine's": ("serve W/good.pt --state W/state --host 192.0.2.1", "cannot listen"),
}


def _files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", [*CASES, *BAD_VALUES])
def test_a_bad_path_or_number_is_one_line_naming_it_with_exit_code_2_and_nothing_written(case, world, monkeypatch,
                                                                                         capsys):
    args, named = {**CASES, **BAD_VALUES}[case]
    before = _files(world)
    code = run_cli(monkeypatch, *[a.replace("W/", f"{world}/") for a in args.split()])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert named in err, err
    assert _files(world) == before, "a file was written"


def test_serving_on_a_port_in_use_is_one_line_before_the_state_folder_is_made(world, monkeypatch, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run_cli(monkeypatch, "serve", world / "good.pt", "--state", world / "state", "--port", port)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"--port {port}: cannot listen there" in err, err
    assert not (world / "state").exists()
