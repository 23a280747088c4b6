"""Annotations in, better models out. Each annotation a webhook brings is imported into the
labeled folder by ``endopat import``'s rules (an update replaces the frame's mask; a new annotation
never silently overwrites a different one), before the webhook is answered, so a kill loses none.
Every ``retrain_every`` new masks, or on START_TRAINING, a fine-tune runs in a background thread
from the configured start on a fresh group-disjoint split of the labeled folder; the new model is
served only when its validation Dice is not below the served model's on the same validation part
(both scored by :func:`endopat.evaluate.evaluate`). Each training's folder and verdict stay under
``STATE/trainings/``; the served one is in ``STATE/current.json`` (:mod:`endopat.serve.model`)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from endopat.annotation.importer import import_export
from endopat.annotation.label_studio import UPLOAD_PREFIX, image_name
from endopat.checkpoints import load_checkpoint
from endopat.config import FinetuneConfig
from endopat.data.splits import train_val
from endopat.errors import EndopatError
from endopat.evaluate import evaluate
from endopat.finetune import finetune
from endopat.io import atomic_write_text, read_record
from endopat.serve.images import ImageSource, RequestError
from endopat.serve.model import ServedModel
from endopat.suggest import suggest

EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "START_TRAINING")


class Learner:
    def __init__(self, served: ServedModel, labeled: Path, images: ImageSource, state: Path,
                 start: Path | None = None, retrain_every: int = 0, epochs: int = 30, log=print,
                 unlabeled: Path | None = None, push: int = 0, aliases: dict[str, str] | None = None):
        self.served, self.labeled, self.images, self.state = served, labeled, images, state
        self.start = start or served.checkpoint  # what every retraining starts from
        self.retrain_every, self.epochs, self.log = retrain_every, epochs, log
        self.unlabeled, self.push = unlabeled, push  # where next frames come from; how many after a swap
        self.new = 0  # masks added or replaced since the last training started
        self.aliases = dict(aliases or {})  # a labeling config's label -> the model's class (--label)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def training(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def webhook(self, event: str, payload: dict) -> dict:
        project = payload.get("project", {}).get("id") if isinstance(payload.get("project"), dict) else None
        if event == "START_TRAINING":
            return self.start_training(project)
        if event not in EVENTS:
            return {"status": "ignored", "event": event}
        task, annotation = payload.get("task"), payload.get("annotation")
        if not isinstance(task, dict) or not isinstance(annotation, dict):
            raise RequestError(400, f"{event}: the payload needs 'task' and 'annotation' objects")
        counts = self._import(event, task, annotation)
        with self._lock:
            self.new += counts.get("added", 0) + counts.get("replaced", 0)
            due = self.retrain_every and self.new >= self.retrain_every
        out = {"status": "imported", **{k: v for k, v in counts.items() if isinstance(v, int)}}
        if due:
            out["training"] = self.start_training(project)["status"]
        return out

    def _import(self, event: str, task: dict, annotation: dict) -> dict:
        """One task's annotation through ``endopat import`` (Label Studio JSON)."""
        name = UPLOAD_PREFIX.sub("", Path(image_name(task)).name)  # an upload's name, as the user gave it
        if not name:
            raise RequestError(400, f"task {task.get('id')}: no image in its data")
        _, data = self.images.task_image(task)
        incoming = self.state / "incoming"
        image = incoming / "images" / name
        if not image.is_file() or image.read_bytes() != data:
            image.parent.mkdir(parents=True, exist_ok=True)
            tmp = image.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(image)
        export = incoming / f"{time.strftime('%Y%m%d-%H%M%S')}-task{task.get('id')}-ann{annotation.get('id')}.json"
        atomic_write_text(export, json.dumps([{"id": task.get("id"), "data": task.get("data", {}),
                                               "annotations": [annotation]}]))
        try:
            return import_export(export, image.parent, self.labeled, format="label-studio",
                                 replace=event == "ANNOTATION_UPDATED", classes=self.served.labels,
                                 labels=[f"{k}={v}" for k, v in self.aliases.items()]
                                 if not self.served.labels.is_binary else None)
        except EndopatError as err:
            raise RequestError(409 if "holds a different mask" in str(err) else 400, str(err)) from None

    def start_training(self, project: int | None = None) -> dict:
        """A retraining in the background; after a swap, with ``push`` and the project known,
        the next frames to label are suggested by the new model and pushed as tasks."""
        with self._lock:
            if self.training:
                return {"status": "already training"}
            if self.served.checkpoint.suffix.lower() == ".onnx":
                raise RequestError(400, "this server serves an ONNX file: retraining needs the .pt checkpoint")
            self.new = 0
            self._thread = threading.Thread(target=self._train, args=(project,), name="endopat-retrain", daemon=True)
            self._thread.start()
            return {"status": "training started"}

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _train(self, project: int | None = None) -> None:
        runs = self.state / "trainings"
        folder = runs / f"{len(list(runs.glob('*'))) + 1 if runs.is_dir() else 1:04d}"
        record: dict = {"folder": str(folder), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "served_before": self.served.model_version}
        try:
            train, val = train_val(self.labeled, folder, log=lambda *a: None)
            cfg = FinetuneConfig(model=load_checkpoint(self.start).model, epochs=self.epochs)
            best = finetune(train, val, folder / "run", cfg, init=self.start, progress=False, log=lambda *a: None,
                            provenance={"served_by": "endopat serve", "labeled": str(self.labeled)})
            new = float(np.mean([r["dice"] for r in evaluate(best, val)]))
            old = float(np.mean([r["dice"] for r in evaluate(self.served.checkpoint, val)]))
            record.update(train=len(train), val=len(val), val_dice_new=new, val_dice_served=old)
            if new >= old:
                record["served"] = self.served.swap(best)
                record["verdict"] = "swapped in: not worse on the validation part"
            else:
                record["verdict"] = "kept the served model: the new one is worse on the validation part"
        except Exception as err:  # noqa: BLE001 - a background thread: every failure ends in a verdict
            record["verdict"] = f"failed: {err.__class__.__name__}: {err}"
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        if "served" in record and self.push and project is not None:
            try:
                record["pushed"] = self.push_next(int(project), self.push)["pushed"]
            except (EndopatError, RequestError, OSError) as err:
                record["pushed"] = f"failed: {err}"
        atomic_write_text(folder / "verdict.json", json.dumps(record, indent=1))
        self.log(f"retraining {folder.name}: {record['verdict']}")

    def push_next(self, project: int, n: int) -> dict:
        """``endopat suggest`` with the served model on the ``unlabeled`` source (hybrid: diverse
        and uncertain frames, none already labeled), the chosen frames uploaded to the Label
        Studio ``project`` as new tasks (Label Studio then asks /predict for their masks)."""
        if self.unlabeled is None or not self.images.label_studio_url:
            raise RequestError(400, "suggesting tasks needs --unlabeled and Label Studio's URL and token")
        runs = self.state / "suggested"
        out = runs / f"{len(list(runs.glob('*'))) + 1 if runs.is_dir() else 1:04d}"
        model = self.served.checkpoint
        suggest(self.unlabeled, n, out, model=model if model.suffix != ".onnx" else None, labeled=self.labeled,
                strategy="hybrid" if model.suffix != ".onnx" else "diverse", progress=False, log=lambda *a: None)
        files = sorted((out / "frames").glob("*.png"))
        if files:
            self.images.upload(project, files)
        return {"pushed": len(files), "folder": str(out)}

    def trainings(self) -> list[dict]:
        runs = self.state / "trainings"
        return [read_record(p, "training verdict", dict[str, Any]) for p in sorted(runs.glob("*/verdict.json"))]
