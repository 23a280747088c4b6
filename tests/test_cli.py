import re

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, run_cli, slow_or_shuffled_video_store
from endopat.archs import ARCHS
from endopat.encoder_weights import random_published


def test_help_lists_the_commands(monkeypatch, capsys):
    assert run_cli(monkeypatch, "--help") == 0
    out = capsys.readouterr().out
    for cmd in ("synth", "pretrain", "finetune", "evaluate", "demo"):
        assert cmd in out


def test_a_missing_source_is_a_one_line_error_with_exit_code_2(monkeypatch, capsys, tmp_path):
    code = run_cli(monkeypatch, "pretrain", "--unlabeled", tmp_path / "nope", "--out", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope: not found" in err and "Traceback" not in err


def test_an_empty_folder_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code = run_cli(monkeypatch, "pretrain", "-u", tmp_path / "empty", "-o", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 2 and "empty: no videos" in err and err.count("\n") == 1


def test_a_non_image_file_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "frame.png"
    bad.write_text("this is text")
    code = run_cli(monkeypatch, "pretrain", "-u", bad, "-o", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 2 and "frame.png: not a readable image" in err


def test_a_config_typo_is_a_one_line_error_naming_the_key(monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epohcs: 3\n")
    code = run_cli(monkeypatch, "finetune", "-d", tmp_path, "-o", tmp_path / "r", "-c", cfg)
    assert code == 2 and "unknown key 'epohcs'" in capsys.readouterr().err


def test_pretrain_finetune_evaluate_run_end_to_end(monkeypatch, capsys, tmp_path, tiny_data):
    pre_cfg = tmp_path / "pre.yaml"
    pre_cfg.write_text(TINY_MODEL + "discriminator:\n  width: 0.125\nsample_every: 2\ncheckpoint_every: 2\n"
                       "log_every: 1\n")
    ft_cfg = tmp_path / "ft.yaml"
    ft_cfg.write_text(TINY_MODEL + "min_samples_per_epoch: 4\n")
    assert run_cli(monkeypatch, "pretrain", "-u", tiny_data / "unlabeled", "-o", tmp_path / "pre",
                   "-c", pre_cfg, "--steps", 3, "--batch-size", 2, "--no-progress") == 0
    assert (tmp_path / "pre" / "samples" / "step_000002.png").is_file()
    assert (tmp_path / "pre" / "losses.csv").read_text().count("\n") == 4
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft",
                   "-c", ft_cfg, "--init", tmp_path / "pre" / "pretrained.pt", "--epochs", 2,
                   "--no-progress") == 0
    out = capsys.readouterr().out
    assert "re-initialised (2 tensors): final_conv" in out
    assert run_cli(monkeypatch, "evaluate", tmp_path / "ft" / "best.pt", "-d", tiny_data / "labeled",
                   "-o", tmp_path / "m.csv") == 0
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0].startswith("id,group,dice,iou") and len(lines) == 1 + 3
    ckpt = torch.load(tmp_path / "ft" / "best.pt", weights_only=True)
    assert ckpt["kind"] == "segmenter" and ckpt["provenance"]["init"].endswith("pretrained.pt")


def _pretrain_args(tmp_path, tiny_data, checkpoint_every):
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(TINY_MODEL + "discriminator:\n  width: 0.125\n"
                   f"checkpoint_every: {checkpoint_every}\nlog_every: 1\n")
    return ["pretrain", "-u", tiny_data / "unlabeled", "-o", tmp_path / "pre", "-c", cfg,
            "--batch-size", 2, "--no-progress"]


def test_pretraining_resumes_where_it_stopped(monkeypatch, tmp_path, tiny_data):
    common = _pretrain_args(tmp_path, tiny_data, checkpoint_every=2)
    assert run_cli(monkeypatch, *common, "--steps", 2) == 0
    assert run_cli(monkeypatch, *common, "--steps", 4) == 0
    steps = [line.split(",")[0] for line in (tmp_path / "pre" / "losses.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4"]


def _tensorboard(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tensorboard_gets_every_logged_scalar_and_the_sample_figures_once_across_a_resume(monkeypatch, tmp_path,
                                                                                          tiny_data):
    common = _pretrain_args(tmp_path, tiny_data, checkpoint_every=2)
    assert run_cli(monkeypatch, *common, "--steps", 2) == 0
    assert run_cli(monkeypatch, *common, "--steps", 4) == 0
    events = _tensorboard(tmp_path / "pre" / "tensorboard")
    assert {"loss_g", "loss_d", "d_real", "d_fake"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss_g")] == [1, 2, 3, 4]
    assert events.Tags()["images"] == ["samples"]


def test_fine_tuning_logs_its_curves_to_tensorboard(monkeypatch, tmp_path, tiny_data):
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(TINY_MODEL + "min_samples_per_epoch: 2\n")
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft", "-c", cfg,
                   "--epochs", 2, "--no-progress") == 0
    events = _tensorboard(tmp_path / "ft" / "tensorboard")
    assert {"train_loss", "val_loss", "val_dice", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val_dice")] == [1, 2]


def test_resumed_pretraining_keeps_the_loss_weights_it_measured_at_the_start(monkeypatch, tmp_path, tiny_data):
    import json

    common = _pretrain_args(tmp_path, tiny_data, checkpoint_every=1)
    assert run_cli(monkeypatch, *common, "--steps", 2) == 0
    first = json.loads((tmp_path / "pre" / "pretrain.json").read_text())["loss_weights"]
    assert run_cli(monkeypatch, *common, "--steps", 3) == 0
    again = json.loads((tmp_path / "pre" / "pretrain.json").read_text())["loss_weights"]
    assert first == again and first["lam"] != 0.0625  # measured, not the fixed worst-case value


def test_resuming_a_training_state_of_an_older_endopat_is_refused_naming_the_file(monkeypatch, capsys, tmp_path,
                                                                                  tiny_data):
    common = _pretrain_args(tmp_path, tiny_data, checkpoint_every=1)
    assert run_cli(monkeypatch, *common, "--steps", 1) == 0
    state = torch.load(tmp_path / "pre" / "last.pt", weights_only=True)
    old = {"step": 1, **state.pop("objects")}  # the flat layout of endopat 0.1
    torch.save(old, tmp_path / "pre" / "last.pt")
    assert run_cli(monkeypatch, *common, "--steps", 2) == 2
    assert "last.pt: a training state of an older endopat" in capsys.readouterr().err


def test_inspect_names_the_layout_and_counts(monkeypatch, capsys, tiny_data):
    assert run_cli(monkeypatch, "inspect", tiny_data / "labeled") == 0
    out = capsys.readouterr().out
    assert "[train] layout generic: 3 images" in out and "problems: 0" in out


def test_inspect_names_the_mask_encoding_it_found_and_reads_colour_masks_with_a_class_map(monkeypatch, capsys,
                                                                                          tmp_path):
    import numpy as np
    from PIL import Image

    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "images" / f"v{i}_f0.png")
        rgb = np.zeros((16, 16, 3), np.uint8)
        rgb[:6] = (255, 0, 0)
        Image.fromarray(rgb).save(tmp_path / "masks" / f"v{i}_f0.png")
    assert run_cli(monkeypatch, "inspect", tmp_path) == 1
    out = capsys.readouterr().out
    assert "masks: colour-coded (2 colours) (3)" in out and "give a class map" in out
    assert run_cli(monkeypatch, "inspect", tmp_path, "--class-map", "255,0,0=instrument;0,0,0=background") == 0
    assert "problems: 0" in capsys.readouterr().out
    assert run_cli(monkeypatch, "inspect", tmp_path, "--mask-threshold", "2") == 2


def test_inspect_lists_a_mask_of_the_wrong_size_as_a_problem(monkeypatch, capsys, tmp_path):
    import numpy as np
    from PIL import Image

    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "v1_1.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "v1_1.png")
    assert run_cli(monkeypatch, "inspect", tmp_path) == 1
    out = capsys.readouterr().out
    assert "problems: 1" in out and "v1_1.png: mask size 4x4 != image size 8x8" in out


def test_inspect_reads_past_a_frame_without_its_mask_and_lists_it_with_exit_code_1(monkeypatch, capsys,
                                                                                   shared_data):
    # the real CholecSeg8k sample: 72 frames with masks and frame_633 without, as in the source
    assert run_cli(monkeypatch, "inspect", shared_data / "cholecseg8k-sample") == 1
    out = capsys.readouterr().out
    assert "layout cholecseg8k: 73 images, 72 mask files" in out and "problems: 1" in out
    assert "frame_633_endo.png: no watershed mask frame_633_endo_watershed_mask.png" in out


def test_reading_a_source_with_a_frame_without_its_mask_is_a_one_line_error(monkeypatch, capsys,
                                                                            shared_data, tmp_path):
    code = run_cli(monkeypatch, "finetune", "-d", shared_data / "cholecseg8k-sample", "-o", tmp_path / "r",
                   "--split", tmp_path / "none.json")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "frame_633_endo.png: no watershed mask" in err


def test_split_then_finetune_on_a_fraction_subset(monkeypatch, capsys, tmp_path, tiny_data):
    from endopat.data.splits import Split

    assert run_cli(monkeypatch, "split", tiny_data / "labeled", "-o", tmp_path / "split.json",
                   "--fractions", "1,1/3") == 0
    sp = Split.load(tmp_path / "split.json")
    assert len(sp.train) == 3 and len(sp.subsets["1/3"]) == 3
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(TINY_MODEL + "min_samples_per_epoch: 2\n")
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "--split", tmp_path / "split.json",
                   "--fraction", "1/3", "--subset", 2, "-o", tmp_path / "ft", "-c", cfg, "--epochs", 1,
                   "--no-progress") == 0
    ckpt = torch.load(tmp_path / "ft" / "best.pt", weights_only=True)
    assert ckpt["provenance"]["train_images"] == 1


def _flat_copy(labeled, out):
    import shutil

    for kind in ("images", "masks"):
        (out / kind).mkdir(parents=True)
        for f in labeled.glob(f"*/{kind}/*"):
            shutil.copy(f, out / kind / f.name)
    return out


def test_a_folder_without_parts_is_split_by_video_saved_and_reused(monkeypatch, capsys, tmp_path, tiny_data):
    from endopat.data.readers import open_labeled
    from endopat.data.splits import Split

    flat = _flat_copy(tiny_data / "labeled", tmp_path / "flat")
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(TINY_MODEL + "min_samples_per_epoch: 2\n")
    args = ("finetune", "-d", flat, "-o", tmp_path / "ft", "-c", cfg, "--epochs", 1, "--no-progress")
    assert run_cli(monkeypatch, *args) == 0
    assert "split by group" in capsys.readouterr().out
    saved = (tmp_path / "ft" / "split.json").read_text()
    sp, group = Split.load(tmp_path / "ft" / "split.json"), {s.id: s.group for s in open_labeled(flat)["all"]}
    parts = [{group[i] for i in ids} for ids in (sp.train, sp.val, sp.test)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert run_cli(monkeypatch, *args) == 0  # again: the same split, not a new one
    assert "split by group" not in capsys.readouterr().out
    assert (tmp_path / "ft" / "split.json").read_text() == saved
    assert run_cli(monkeypatch, "evaluate", tmp_path / "ft" / "best.pt", "-d", flat, "-o", tmp_path / "m.csv") == 0
    assert "trained with" in capsys.readouterr().out
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 1 + len(sp.test)


def test_frames_writes_a_store_from_videos(monkeypatch, capsys, tmp_path, tiny_data):
    assert run_cli(monkeypatch, "frames", tiny_data / "unlabeled", "-o", tmp_path / "fs", "--size", "32x48",
                   "--every", 2, "--no-progress") == 0
    assert "6 frames of 32x48" in capsys.readouterr().out


def test_frames_says_how_alike_frames_two_apart_are_for_temporal_pairs(monkeypatch, capsys, tmp_path):
    import re

    slow_or_shuffled_video_store(tmp_path, shuffled=False)  # its frames in tmp_path/frames
    assert run_cli(monkeypatch, "frames", tmp_path / "frames", "-o", tmp_path / "fs", "--size", "32x32",
                   "--no-progress") == 0
    found = re.search(r"frames 2 apart differ ([0-9.]+)x as much as any two frames", capsys.readouterr().out)
    assert found and float(found.group(1)) < 0.9


def test_synth_with_too_few_videos_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    code = run_cli(monkeypatch, "synth", tmp_path, "--videos", 2, "--no-progress")
    err = capsys.readouterr().err
    assert code == 2 and "'videos'" in err and err.count("\n") == 1


def test_frames_of_auto_size_keep_a_full_hd_video_s_aspect(monkeypatch, capsys, tmp_path):
    import numpy as np

    from endopat.data.video import write_video

    write_video(tmp_path / "hd.mp4", [np.full((1080, 1920, 3), 90, np.uint8)] * 2)
    assert run_cli(monkeypatch, "frames", tmp_path / "hd.mp4", "-o", tmp_path / "fs", "--no-progress") == 0
    assert "2 frames of 256x448" in capsys.readouterr().out


def test_a_full_hd_labeled_folder_trains_letterboxed_and_predicts_full_resolution_masks(monkeypatch, capsys,
                                                                                         tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("images", "masks"):
        (tmp_path / "hd" / d).mkdir(parents=True)
    for v in range(3):
        for f in range(2):
            image = np.empty((1080, 1920, 3), np.uint8)
            image[:] = (190, 60, 50)
            mask = np.zeros((1080, 1920), bool)
            mask[rng.integers(0, 500) :][:400, rng.integers(0, 1400) :][:, :400] = True
            image[mask] = 150
            Image.fromarray(image).save(tmp_path / "hd" / "images" / f"vid{v}_f{f}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "hd" / "masks" / f"vid{v}_f{f}.png")
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(TINY_MODEL + "min_samples_per_epoch: 2\n")
    assert run_cli(monkeypatch, "finetune", "-d", tmp_path / "hd", "-o", tmp_path / "ft", "-c", cfg,
                   "--image-size", "32x64", "--epochs", 1, "--no-progress") == 0
    assert torch.load(tmp_path / "ft" / "best.pt", weights_only=True)["model"]["image_size"] == [32, 64]
    assert run_cli(monkeypatch, "predict", tmp_path / "ft" / "best.pt", tmp_path / "hd" / "images" / "vid0_f0.png",
                   "-o", tmp_path / "pred", "--no-progress") == 0
    assert Image.open(tmp_path / "pred" / "masks" / "vid0_f0.png").size == (1920, 1080)


# one per block type and weights layout (basic and bottleneck ResNets, EfficientNet); every
# architecture is built and run in test_networks.py, and their weights load in test_encoder_weights.py
# and the foundation families: a ViT (patch 14: a 28-pixel image), ConvNeXtV2 and SurgeNet's CaFormer
HANDOFF_ARCHS = [("resnet18", 32), ("resnet50", 32), ("efficientnet-b0", 32), ("vit_s14", 28),
                 ("convnextv2_tiny", 32), ("caformer_s18_relu", 32)]


@pytest.mark.parametrize("arch, size", HANDOFF_ARCHS)
def test_an_encoder_unet_pretrains_from_a_weights_file_and_hands_off_to_fine_tuning(monkeypatch, capsys, tmp_path,
                                                                                     tiny_data, arch, size):

    torch.save(random_published(arch), tmp_path / "imagenet.pth")
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"model: {{arch: {arch}, image_size: [{size}, {size}], decoder_channels: [16, 8, 8, 8, 8]}}\n"
                   "recolor: {discriminator: {width: 0.125}}\n")
    assert run_cli(monkeypatch, "pretrain", "-u", tiny_data / "unlabeled", "-o", tmp_path / "pre", "-c", cfg,
                   "--steps", 1, "--batch-size", 2, "--encoder-weights", tmp_path / "imagenet.pth",
                   "--no-progress") == 0
    assert "imagenet.pth (" in capsys.readouterr().out
    pre = torch.load(tmp_path / "pre" / "pretrained.pt", weights_only=True)
    assert pre["provenance"]["encoder_weights"]["arch"] == arch
    assert pre["reinit"] == list(ARCHS[arch].groups["last"])
    ft = tmp_path / "ft.yaml"
    ft.write_text("min_samples_per_epoch: 2\n")  # the architecture comes from the init checkpoint
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft", "-c", ft,
                   "--init", tmp_path / "pre" / "pretrained.pt", "--epochs", 1, "--no-progress") == 0
    report = (tmp_path / "ft" / "init_report.txt").read_text()
    assert "not loaded" not in report and "re-initialised" in report and ARCHS[arch].groups["last"][0] in report
    best = torch.load(tmp_path / "ft" / "best.pt", weights_only=True)
    assert best["model"]["arch"] == arch and best["provenance"]["encoder_weights"]["arch"] == arch


def test_fine_tuning_from_encoder_weights_alone_writes_the_weights_report(monkeypatch, tmp_path, tiny_data):

    torch.save(random_published("resnet18"), tmp_path / "imagenet.pth")
    cfg = tmp_path / "m.yaml"
    cfg.write_text("model: {image_size: [32, 32], decoder_channels: [16, 8, 8, 8, 8]}\nmin_samples_per_epoch: 2\n")
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft", "-c", cfg,
                   "--arch", "resnet18", "--encoder-weights", tmp_path / "imagenet.pth", "--epochs", 1,
                   "--no-progress") == 0
    assert "loaded 100 tensors" in (tmp_path / "ft" / "init_report.txt").read_text()


def test_a_weights_file_of_another_network_is_a_one_line_error(monkeypatch, capsys, tmp_path, tiny_data):

    torch.save(random_published("resnet50"), tmp_path / "r50.pth")
    code = run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft", "--image-size", 32,
                   "--arch", "resnet18", "--encoder-weights", tmp_path / "r50.pth", "--no-progress")
    err = capsys.readouterr().err
    assert code == 2 and "r50.pth: not resnet18 encoder weights" in err and err.count("\n") == 1


def test_suggest_chooses_frames_and_writes_both_annotation_imports(monkeypatch, capsys, tmp_path, tiny_data):
    assert run_cli(monkeypatch, "suggest", tiny_data / "unlabeled", "-n", 3, "-o", tmp_path / "next", "--fps", 25,
                   "--min-gap", 0, "--no-progress") == 0
    assert "chose 3 of" in capsys.readouterr().out
    for f in ("ranking.csv", "contact_sheet.png", "cvat/annotations.xml", "cvat/images.txt",
              "label_studio/tasks.json", "label_studio/label_config.xml"):
        assert (tmp_path / "next" / f).is_file(), f


def test_suggest_from_an_empty_folder_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code = run_cli(monkeypatch, "suggest", tmp_path / "empty", "-n", 3, "-o", tmp_path / "next", "--no-progress")
    err = capsys.readouterr().err
    assert code == 2 and "empty" in err and err.count("\n") == 1


def test_the_weights_command_says_what_a_file_is_and_fails_on_a_file_of_no_architecture(monkeypatch, capsys,
                                                                                          tmp_path):

    torch.save({"model": random_published("vit_s16")}, tmp_path / "dino.pth")
    assert run_cli(monkeypatch, "weights", tmp_path / "dino.pth", "--arch", "vit_s16") == 0
    out = capsys.readouterr().out
    assert "sha256" in out and "(vit layout, vit_s16): loaded" in out and "interpolated" not in out  # 224 = file
    torch.save({"x": torch.zeros(3)}, tmp_path / "odd.pth")
    assert run_cli(monkeypatch, "weights", tmp_path / "odd.pth", "--arch", "resnet18") == 1
    assert "not resnet18: no tensor matches" in capsys.readouterr().out


def test_inspect_prints_the_classes_of_a_class_id_folder_with_their_shares(monkeypatch, capsys, shared_data):
    assert run_cli(monkeypatch, "inspect", shared_data / "endoscapes-seg50-dev") == 0
    out = capsys.readouterr().out
    assert "class ids of 7 classes (418)" in out and "problems: 0" in out
    assert re.search(r"5 gallbladder: \d+\.\d%, \d+ frames", out) and "ignored:" in out
    assert "blank images (one colour): 7 (" in out  # the dataset's black frames, all background


def test_classes_on_the_command_line_name_class_id_masks(monkeypatch, capsys, tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "images" / "v_f0.png")
    Image.fromarray(np.array([[0, 1, 2, 3] * 2] * 8, np.uint8)).save(tmp_path / "masks" / "v_f0.png")
    assert run_cli(monkeypatch, "inspect", tmp_path) == 1
    assert "look like class ids" in capsys.readouterr().out
    assert run_cli(monkeypatch, "inspect", tmp_path, "--classes", "background,a,b,c") == 0
    assert "3 c: 25.0%, 1 frames" in capsys.readouterr().out
