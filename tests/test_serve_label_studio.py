"""endopat serve with Label Studio itself: its PyPI package (in its own virtual environment, made
by ``make label-studio``; sqlite) started on 127.0.0.1 by the test, a project made through
label-studio-sdk, the backend connected, predictions fetched for uploaded tasks, annotations made
through the API reaching the webhook, a retraining started from Label Studio and the new model
version served; and headless Chromium opening the task page with the prediction drawn."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
LABEL_STUDIO = Path(os.environ.get("ENDOPAT_LABEL_STUDIO", ROOT / ".venv-ls" / "bin" / "label-studio"))
TOKEN = "0123456789abcdef0123456789abcdef01234567"
USER, PASSWORD = "test@endopat.local", "endopat-test-password"


def _spawn(args: list, log: Path, env: dict, url: str, seconds: float):
    """Start ``args`` (output to ``log``), wait until ``url`` answers, yield, then stop it."""
    proc = subprocess.Popen([str(a) for a in args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    try:
        _wait(url, proc, seconds, log)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def _wait(url: str, proc: subprocess.Popen, seconds: float, log: Path | None = None) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited: " + (log.read_text()[-2000:] if log else ""))
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds:.0f} s")


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if not LABEL_STUDIO.is_file():
        pytest.skip(f"Label Studio not installed at {LABEL_STUDIO} (make label-studio installs it; CI does)")
    data = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "DJANGO_DB": "sqlite",
           "LABEL_STUDIO_BASE_DATA_DIR": str(data), "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
           "COLLECT_ANALYTICS": "false",
           # the backend and the webhook are on 127.0.0.1, which Label Studio refuses by default
           "SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false", "USE_DEFAULT_BANNED_SUBNETS": "false"}
    url = f"http://127.0.0.1:{port}"
    yield from (url for _ in _spawn([LABEL_STUDIO, "start", "--no-browser", "--host", "127.0.0.1", "--port", port,
                                     "--data-dir", data, "--username", USER, "--password", PASSWORD,
                                     "--user-token", TOKEN], data / "label-studio.log", env, f"{url}/health", 240))


@pytest.fixture
def backend(world, label_studio):
    """``endopat serve`` for that Label Studio: the world's tiny segmenter, at the threshold that
    makes its mask cover about half of each frame (so there is a prediction to see)."""
    import torch

    from endopat.checkpoints import load_weights_only, save_atomic
    from endopat.segmenter import Segmenter
    from endopat.io import read_image

    seg = Segmenter(world / "best.pt")
    prob = seg.probabilities([read_image(world / "frames" / "v9_f000.png")])[0]
    ckpt = load_weights_only(world / "best.pt")
    ckpt["threshold"] = float(np.median(prob))
    save_atomic(ckpt, world / "best.pt")
    torch.set_num_threads(1)
    url = f"http://127.0.0.1:{free_port()}"
    args = [sys.executable, "-m", "endopat", "serve", world / "best.pt", "--labeled", world / "labeled", "--unlabeled",
            world / "frames", "--push", "2", "--state", world / "state", "--port", url.rsplit(":", 1)[1],
            "--label-studio-url", label_studio, "--label-studio-token", TOKEN, "--backend", "torch", "--epochs", "15"]
    yield from (url for _ in _spawn(args, world / "serve.log", {**os.environ, "OMP_NUM_THREADS": "1"},
                                     f"{url}/health", 120))


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _project(label_studio, world):
    """A project with the three frames uploaded as tasks (images served by Label Studio)."""
    import requests
    from label_studio_sdk import LabelStudio

    from endopat.annotation.write import LABEL_STUDIO_CONFIG

    ls = LabelStudio(base_url=label_studio, api_key=TOKEN)
    project = ls.projects.create(title="endopat serve", label_config=LABEL_STUDIO_CONFIG)
    files = [(f"file{k}", (p.name, p.read_bytes(), "image/png"))
             for k, p in enumerate(sorted((world / "frames").glob("*.png")))]
    r = requests.post(f"{label_studio}/api/projects/{project.id}/import", files=files,
                      headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert r.status_code == 201, r.text
    tasks = sorted(ls.tasks.list(project=project.id), key=lambda t: t.id)
    assert len(tasks) == 3
    return ls, project, tasks


def _predictions(ls, project, tasks) -> dict:
    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})
    return {t.id: list(ls.predictions.list(task=t.id)) for t in tasks}


def test_label_studio_shows_the_served_model_s_predictions_and_its_annotations_retrain_it(world, label_studio,
                                                                                         backend):
    from label_studio_sdk.converter.brush import decode_rle

    from endopat.annotation.write import brush_rle
    from endopat.segmenter import Segmenter
    from endopat.io import read_image

    ls, project, tasks = _project(label_studio, world)
    ml = ls.ml.create(project=project.id, url=backend, title="endopat")  # Label Studio calls /health and /setup

    # predictions, fetched by Label Studio for its own uploaded tasks, equal endopat predict's
    seg = Segmenter(world / "best.pt")
    for task in tasks:
        [prediction] = _predictions(ls, project, [task])[task.id]
        assert prediction.model_version == "endopat-v1"
        name = task.data["image"].rsplit("/", 1)[-1].split("-", 1)[1]
        want = seg.probabilities([read_image(world / "frames" / name)])[0] >= seg.threshold
        [shape] = prediction.result
        assert np.array_equal(decode_rle(shape["value"]["rle"]).reshape(30, 40, 4)[..., 3] > 0, want)

    # an annotation made through the API reaches the webhook and lands in the labeled folder
    ls.webhooks.create(url=f"{backend}/webhook", project=project.id, send_payload=True,
                       actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED"])
    mask = np.zeros((30, 40), bool)
    mask[4:20, 6:30] = True
    result = [{"from_name": "tag", "to_name": "image", "type": "brushlabels", "original_width": 40,
               "original_height": 30, "value": {"format": "rle", "rle": brush_rle(mask), "brushlabels": ["instrument"]}}]
    ls.annotations.create(id=tasks[0].id, result=result, was_cancelled=False)
    saved = world / "labeled" / "masks" / "v9_f000.png"
    for _ in range(60):
        if saved.is_file():
            break
        time.sleep(0.5)
    assert np.array_equal(read_image(saved, "L") > 127, mask)

    # a retraining started from Label Studio; the new model is served and its predictions say so, and
    # it chose the next frames to label (not the one already labeled) and pushed them as tasks
    ls.ml.train(id=ml.id)
    for _ in range(600):
        done = _get(f"{backend}/trainings")
        if done:
            break
        time.sleep(0.5)
    [verdict] = done
    assert verdict["verdict"].startswith("swapped in") and verdict["pushed"] == 2, verdict
    pushed = sorted(ls.tasks.list(project=project.id), key=lambda t: t.id)[3:]
    assert sorted(t.data["image"].rsplit("-", 1)[-1] for t in pushed) == ["v9_f001.png", "v9_f002.png"]
    assert _get(f"{backend}/health")["model_version"] == "endopat-v2"
    ls.actions.create(id="delete_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})
    again = _predictions(ls, project, tasks[1:2])[tasks[1].id]
    assert [p.model_version for p in again] == ["endopat-v2"]


def test_the_task_page_in_headless_chromium_draws_the_model_s_prediction(world, label_studio, backend, tmp_path):
    pytest.importorskip("selenium")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("headless Chromium and chromedriver not installed (Debian: chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ls, project, tasks = _project(label_studio, world)
    ls.ml.create(project=project.id, url=backend, title="endopat")
    _predictions(ls, project, tasks[:1])
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        browser.get(f"{label_studio}/user/login/")
        browser.find_element(By.NAME, "email").send_keys(USER)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD + "\n")
        WebDriverWait(browser, 60).until(lambda b: "/login" not in b.current_url)
        browser.get(f"{label_studio}/projects/{project.id}/data?task={tasks[0].id}")
        # the editor lists the model's prediction (its tab names the model version) ...
        WebDriverWait(browser, 120).until(ec.presence_of_element_located(
            (By.XPATH, "//*[normalize-space(text())='endopat-v1']")))
        # ... and shows it as a region of the model's class with the model's score in the region list
        WebDriverWait(browser, 60).until(lambda b: "instrument" in b.find_element(
            By.XPATH, "//*[normalize-space(text())='Regions']/ancestor::*[.//*[normalize-space(text())='Relations']]"
            "[1]/following-sibling::*[1]").text)
        browser.save_screenshot(str(world / "label-studio-task.png"))
        painted = browser.execute_script(
            "return Array.from(document.querySelectorAll('canvas')).some(c => { try {"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; } catch (e) {} return false; })")
        assert painted, "no canvas of the task page has a painted pixel"
    finally:
        browser.quit()
