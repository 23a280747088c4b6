"""endopat serve: the Label Studio ML backend protocol, in-process (FastAPI's TestClient); the
real Label Studio end to end is tests/test_serve_label_studio.py."""

import base64
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from endopat.annotation.write import LABEL_STUDIO_CONFIG, brush_rle  # noqa: E402
from endopat.errors import EndopatError  # noqa: E402
from endopat.segmenter import Segmenter  # noqa: E402
from endopat.io import read_image  # noqa: E402
from endopat.serve.app import build_server, create_app  # noqa: E402

from conftest import FIELD_VALUES, SERVE_CFG, free_port, json_fields, replaced  # noqa: E402

def client(world, **kw):
    server = build_server(world / "best.pt", world / "state", world / "labeled", [world / "frames"],
                          backend="torch", log=lambda *a: None, **kw)
    return TestClient(create_app(server)), server


def task(name, k=1):
    return {"id": k, "data": {"image": f"/data/local-files/?d={name}"}}


def test_health_says_up_with_the_model_version(world):
    c, _ = client(world)
    assert c.get("/health").json() == {"status": "UP", "model_class": "endopat", "model_version": "endopat-v1",
                                       "training": False}


def test_predict_gives_each_task_a_brush_mask_equal_to_the_segmenter_s_decoded_by_label_studio(world):
    from label_studio_sdk.converter.brush import decode_rle

    c, _ = client(world)
    r = c.post("/predict", json={"tasks": [task("v9_f000.png", 1), task("v9_f001.png", 2)],
                                 "label_config": LABEL_STUDIO_CONFIG, "project": "1.123"})
    assert r.status_code == 200, r.text
    seg = Segmenter(world / "best.pt")
    for k, result in enumerate(r.json()["results"]):
        img = read_image(world / "frames" / f"v9_f{k:03d}.png")
        want = seg.probabilities([img])[0] >= seg.threshold
        assert result["model_version"] == "endopat-v1" and 0.5 <= result["score"] <= 1
        if not want.any():
            assert result["result"] == []
            continue
        [shape] = result["result"]
        got = decode_rle(shape["value"]["rle"]).reshape(30, 40, 4)[..., 3] > 0
        assert np.array_equal(got, want) and shape["value"]["brushlabels"] == ["instrument"]
        assert (shape["from_name"], shape["to_name"]) == ("tag", "image")


def test_setup_remembers_the_project_s_config_for_predict(world):
    c, _ = client(world)
    assert c.post("/setup", json={"project": "7.1700000000", "schema": LABEL_STUDIO_CONFIG}).json() == {
        "model_version": "endopat-v1"}
    assert c.post("/predict", json={"tasks": [task("v9_f000.png")], "project": "7.1700000000"}).status_code == 200


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (3000, 3000)).save(buf, format="PNG")
    return buf.getvalue()


BAD = {  # case: (request, status, words in the error)
    "unknown label": (("/setup", {"project": "1", "schema": LABEL_STUDIO_CONFIG.replace("instrument", "liver")}),
                      422, "label 'liver'"),
    "no brush control": (("/setup", {"project": "1", "schema": "<View><Image name='i' value='$image'/></View>"}),
                         422, "no <BrushLabels>"),
    "config not XML": (("/setup", {"project": "1", "schema": "<View"}), 400, "not valid XML"),
    "tasks missing": (("/predict", {"label_config": LABEL_STUDIO_CONFIG}), 422, "tasks"),
    "missing image": (("/predict", {"tasks": [task("nope.png")], "label_config": LABEL_STUDIO_CONFIG}), 404,
                      "no such image"),
    "path outside the roots": (("/predict", {"tasks": [task("../outside.png")], "label_config": LABEL_STUDIO_CONFIG}),
                               403, "outside the folders"),
    "absolute path outside": (("/predict", {"tasks": [{"id": 1, "data": {"image": "/etc/passwd"}}],
                                            "label_config": LABEL_STUDIO_CONFIG}), 403, "outside the folders"),
    "oversized image": (("/predict", {"tasks": [task("huge.png")], "label_config": LABEL_STUDIO_CONFIG}), 413,
                        "over the server's limit"),
    "not an image": (("/predict", {"tasks": [task("junk.png")], "label_config": LABEL_STUDIO_CONFIG}), 400,
                     "not a readable image"),
    "a URL of another host": (("/predict", {"tasks": [{"id": 1, "data": {"image": "http://example.org/a.png"}}],
                                            "label_config": LABEL_STUDIO_CONFIG}), 400, "--label-studio-url"),
    "webhook without task": (("/webhook", {"action": "ANNOTATION_CREATED", "annotation": {}}), 400, "'task'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_is_a_4xx_json_error_and_the_server_keeps_serving(world, case):
    (world / "frames" / "huge.png").write_bytes(_huge_png())
    (world / "frames" / "junk.png").write_text("not an image")
    c, _ = client(world, max_image_pixels=1_000_000)
    (path, body), status, words = BAD[case]
    r = c.post(path, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and "Traceback" not in r.text
    assert c.get("/health").status_code == 200


def test_malformed_json_is_a_422_json_error(world):
    c, _ = client(world)
    r = c.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "malformed request" in r.json()["error"]


def test_any_value_in_any_field_of_a_request_is_answered_and_never_an_internal_error(world):
    c, _ = client(world)
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:30] = True
    bodies = {
        "/predict": {"tasks": [task("v9_f000.png")], "label_config": LABEL_STUDIO_CONFIG, "project": "1",
                     "params": {"context": None}},
        "/setup": {"project": "1", "schema": LABEL_STUDIO_CONFIG},
        "/webhook": {"action": "ANNOTATION_CREATED", "task": task("v9_f001.png"), "annotation": _annotation(mask),
                     "project": {"id": 1, "label_config": LABEL_STUDIO_CONFIG}},
    }
    for route, body in bodies.items():
        for field in json_fields(body):
            for value in FIELD_VALUES:  # NaN too: the server's JSON parser takes it
                sent = json.dumps(replaced(body, field, value))
                r = c.post(route, content=sent, headers={"content-type": "application/json"})
                assert r.status_code < 500, f"{route} {field}={value!r}: {r.text}"


def test_with_basic_auth_a_request_without_it_is_refused(world):
    c, _ = client(world, basic_auth=("ls", "secret"))
    assert c.get("/health").status_code == 401
    good = "Basic " + base64.b64encode(b"ls:secret").decode()
    assert c.get("/health", headers={"Authorization": good}).status_code == 200
    assert c.get("/health", headers={"Authorization": "Basic " + base64.b64encode(b"ls:no").decode()}).status_code == 401


def _annotation(mask: np.ndarray, k: int = 10) -> dict:
    h, w = mask.shape
    return {"id": k, "completed_by": 1, "was_cancelled": False, "updated_at": f"2026-12-06T10:00:{k:02d}Z",
            "result": [{"from_name": "tag", "to_name": "image", "type": "brushlabels", "original_width": w,
                        "original_height": h, "value": {"format": "rle", "rle": brush_rle(mask),
                                                        "brushlabels": ["instrument"]}}]}


def _hook(c, action, name, mask, k=10):
    return c.post("/webhook", json={"action": action, "task": task(name), "annotation": _annotation(mask, k),
                                    "project": {"id": 1, "label_config": LABEL_STUDIO_CONFIG}})


def test_a_new_annotation_is_imported_and_a_different_one_for_the_same_frame_is_refused_unless_updated(world):
    c, _ = client(world)
    first = np.zeros((30, 40), bool)
    first[5:15, 10:30] = True
    r = _hook(c, "ANNOTATION_CREATED", "v9_f000.png", first)
    assert r.status_code == 201 and r.json()["result"]["added"] == 1
    saved = world / "labeled" / "masks" / "v9_f000.png"
    assert np.array_equal(read_image(saved, "L") > 127, first)
    r = _hook(c, "ANNOTATION_CREATED", "v9_f000.png", ~first, 11)
    assert r.status_code == 409 and "holds a different mask" in r.json()["error"]
    assert np.array_equal(read_image(saved, "L") > 127, first)  # nothing overwritten
    r = _hook(c, "ANNOTATION_UPDATED", "v9_f000.png", ~first, 12)
    assert r.status_code == 201 and r.json()["result"]["replaced"] == 1
    assert np.array_equal(read_image(saved, "L") > 127, ~first)


def _retrain(c, server, monkeypatch, new: float, served: float) -> dict:
    """START_TRAINING with the validation Dice of the new and the served model fixed; the verdict."""
    scores = iter([new, served])  # evaluate's order: the new model, then the served one, same validation part
    monkeypatch.setattr("endopat.serve.learning.evaluate", lambda model, samples, **kw: [{"dice": next(scores)}])
    assert c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}).json()["result"] == {
        "status": "training started"}
    server.learner.wait(120)
    [verdict] = server.learner.trainings()
    return verdict


def test_start_training_swaps_in_a_model_not_worse_on_validation_and_bumps_the_version(world, monkeypatch):
    c, server = client(world, epochs=1)
    verdict = _retrain(c, server, monkeypatch, new=0.9, served=0.5)
    assert verdict["verdict"].startswith("swapped in") and verdict["served"] == "endopat-v2"
    assert c.get("/health").json()["model_version"] == "endopat-v2"
    assert json.loads((world / "state" / "current.json").read_text())["version"] == 2


def test_a_retrained_model_worse_on_validation_is_not_served(world, monkeypatch):
    c, server = client(world, epochs=1)
    assert _retrain(c, server, monkeypatch, new=0.4, served=0.5)["verdict"].startswith("kept the served model")
    assert c.get("/health").json()["model_version"] == "endopat-v1"


def test_every_n_new_masks_start_a_retraining_and_predictions_are_answered_meanwhile(world):
    c, server = client(world, epochs=2, retrain_every=2)
    m = np.zeros((30, 40), bool)
    m[3:9, 4:20] = True
    assert "training" not in _hook(c, "ANNOTATION_CREATED", "v9_f000.png", m).json()["result"]
    assert _hook(c, "ANNOTATION_CREATED", "v9_f001.png", m, 11).json()["result"]["training"] == "training started"
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(c.post("/predict", json={
        "tasks": [task("v9_f002.png")], "label_config": LABEL_STUDIO_CONFIG}).status_code)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.learner.wait(300)
    assert codes == [200] * 4
    [verdict] = server.learner.trainings()
    assert verdict["train"] + verdict["val"] <= 8 and "val_dice_new" in verdict
    assert c.get("/health").json()["model_version"] == ("endopat-v2" if "served" in verdict else "endopat-v1")


def test_a_restarted_server_serves_the_model_it_served_last(world, monkeypatch):
    c, server = client(world, epochs=1)
    _retrain(c, server, monkeypatch, new=0.9, served=0.5)
    again, _ = client(world)
    assert again.get("/health").json()["model_version"] == "endopat-v2"



def test_a_restarted_server_whose_served_checkpoint_is_gone_says_so_naming_its_state(world):
    (world / "state").mkdir()
    (world / "state" / "current.json").write_text(json.dumps({"checkpoint": str(world / "gone.pt"), "version": 3}))
    with pytest.raises(EndopatError, match=r"current.json: the server served .*gone.pt, which is gone"):
        client(world)

def _start(world, port):
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "endopat", "serve", str(world / "best.pt"), "--labeled",
                             str(world / "labeled"), "--unlabeled", str(world / "frames"), "--state",
                             str(world / "state"), "--port", str(port), "--backend", "torch", "--epochs", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                return proc, json.loads(r.read())
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode())
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not come up")


def _post(port, path, body):
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def test_a_server_killed_during_a_retraining_loses_no_annotation_and_serves_the_same_model(world):
    import signal

    port = free_port()
    proc, health = _start(world, port)
    try:
        assert health["model_version"] == "endopat-v1"
        m = np.zeros((30, 40), bool)
        m[2:12, 5:25] = True
        ann = {"action": "ANNOTATION_CREATED", "task": task("v9_f000.png"), "annotation": _annotation(m)}
        assert _post(port, "/webhook", ann)[0] == 201
        assert _post(port, "/webhook", {"action": "START_TRAINING", "project": {"id": 1}})[1]["result"] == {
            "status": "training started"}
        import time

        time.sleep(2)  # inside the 200-epoch retraining
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert np.array_equal(read_image(world / "labeled" / "masks" / "v9_f000.png", "L") > 127, m)
    proc, health = _start(world, port)
    try:
        assert health["model_version"] == "endopat-v1" and not health["training"]
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def three_class(world):
    """A 3-class segmenter (untrained, fixed seed) in the world of the binary one."""
    import torch

    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.labels import Labels
    from endopat.networks import build_unet


    torch.manual_seed(3)
    cfg = ModelConfig(**SERVE_CFG)
    labels = Labels(("background", "liver", "tool"))
    save_checkpoint(world / "mc.pt", kind="segmenter", model_cfg=cfg, labels=labels.to_dict(),
                    state_dict=build_unet(cfg, out_channels=3).state_dict())
    return world, labels


def test_a_multi_class_model_predicts_one_brush_region_per_class_it_finds(three_class):
    from label_studio_sdk.converter.brush import decode_rle

    from endopat.annotation.write import label_studio_config

    world, labels = three_class
    server = build_server(world / "mc.pt", world / "state", None, [world / "frames"], backend="torch",
                          log=lambda *a: None)
    c = TestClient(create_app(server))
    r = c.post("/predict", json={"tasks": [task("v9_f000.png")], "label_config": label_studio_config(labels)})
    assert r.status_code == 200, r.text
    want = Segmenter(world / "mc.pt").predict_ids([read_image(world / "frames" / "v9_f000.png")])[0]
    shapes = r.json()["results"][0]["result"]
    assert {s["value"]["brushlabels"][0] for s in shapes} == {labels.names[i] for i in np.unique(want) if i}
    for s in shapes:
        got = decode_rle(s["value"]["rle"]).reshape(30, 40, 4)[..., 3] > 0
        assert np.array_equal(got, want == labels.id_of(s["value"]["brushlabels"][0]))


def test_a_multi_class_model_refuses_the_binary_config_s_label(three_class):
    world, _ = three_class
    server = build_server(world / "mc.pt", world / "state", None, [world / "frames"], backend="torch",
                          log=lambda *a: None)
    r = TestClient(create_app(server)).post("/setup", json={"project": "1", "schema": LABEL_STUDIO_CONFIG})
    assert r.status_code == 422 and "label 'instrument'" in r.json()["error"] and "liver, tool" in r.json()["error"]
