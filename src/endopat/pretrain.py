"""Re-colorization GAN pretraining (the paper's section 2.2.1).

Frames -> CIE Lab; the generator G (U-Net) maps L to (a, b); the discriminator D (untrained
ResNet18) judges real Lab images against re-coloured ones. Each step updates D once (eq. 5) and then
G once (eq. 1 = gamma * LSGAN eq. 2 + lambda * rebalanced L2 eq. 3 + phi * L2 eq. 4).

Outputs in the run folder::

    frames/            frame store of the unlabeled source (decoded once; reused on resume)
    ab_histogram.json  per-channel a/b counts (grid size 1) behind the rebalancing weights
    losses.csv         step, each loss term, D(real), D(fake)
    samples/step_N.png grey input | re-coloured | original, for a fixed set of frames
    last.pt            training state (resume)
    generator.pt       endopat checkpoint (kind "colorizer") to fine-tune from
    losses.png         loss curves
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from endopat import colour, losses
from endopat.checkpoints import load_weights_only, save_atomic, save_checkpoint, unet_state
from endopat.config import LossWeights, PretrainConfig
from endopat.data.frames import FrameStore, build_store, probe_source
from endopat.errors import EndopatError
from endopat.io import atomic_write_csv, atomic_write_text, write_png
from endopat.networks import Colorizer, Discriminator
from endopat.runtime import make_fabric, prepare_module, progress_bar

LOG_FIELDS = ["step", "loss_g", "gan", "rebalanced", "l2", "loss_d", "d_real", "d_fake"]


class FrameDataset(torch.utils.data.Dataset):
    def __init__(self, store: FrameStore):
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store[i])


def judge(D: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's outputs for real and fake Lab images, from one forward pass over both.

    Both the discriminator and the generator step call this, so D's batch-norm statistics always
    come from the same real + fake batch (judging fakes alone in the generator step would normalise
    them differently from how D learnt to judge them), and DDP sees one forward per backward.
    """
    return D(torch.cat([real, fake])).chunk(2)


def calibrate_weights(G: torch.nn.Module, store: FrameStore, weight_table: torch.Tensor,
                      cfg: LossWeights, device: torch.device, batch: int = 16) -> dict[str, float]:
    """Resolve eq. 1's weights: ``"auto"`` lambda / phi = 1 / the term's value for the generator as
    it is now (freshly initialised), over ``cfg.calibration_frames`` frames spread evenly over the
    store, so each reconstruction term starts near 1 (the paper's "scale between [0, 1]")."""
    resolved = {"gamma": float(cfg.gamma)}
    if cfg.lam != "auto" and cfg.phi != "auto":
        return dict(resolved, lam=float(cfg.lam), phi=float(cfg.phi))
    idx = np.unique(np.linspace(0, len(store) - 1, min(cfg.calibration_frames, len(store))).astype(int))
    reb = plain = 0.0
    with torch.no_grad():
        for start in range(0, len(idx), batch):
            chunk = idx[start : start + batch]
            lab_n = colour.rgb_uint8_to_lab_n(torch.from_numpy(np.stack([store[i] for i in chunk])).to(device))
            ab = lab_n[:, 1:]
            fake = G(lab_n[:, :1])
            reb += float(losses.rebalanced_l2(fake, ab, colour.pixel_weights(ab, weight_table))) * len(chunk)
            plain += float(losses.l2(fake, ab)) * len(chunk)
    reb, plain = reb / len(idx), plain / len(idx)
    resolved["lam"] = 1.0 / max(reb, 1e-8) if cfg.lam == "auto" else float(cfg.lam)
    resolved["phi"] = 1.0 / max(plain, 1e-8) if cfg.phi == "auto" else float(cfg.phi)
    return resolved


def ab_histogram(store: FrameStore, max_frames: int, black_level: float = 0.0,
                 batch: int = 64) -> colour.ABHistogram:
    """a/b histogram (grid size 1) over up to ``max_frames`` frames spread evenly over the store,
    leaving out pixels darker than ``black_level`` (L) when it is > 0."""
    idx = np.unique(np.linspace(0, len(store) - 1, min(max_frames, len(store))).astype(int))
    hist = colour.ABHistogram()
    for start in range(0, len(idx), batch):
        frames = np.stack([store[i] for i in idx[start : start + batch]])
        lab = colour.rgb_to_lab(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
        hist.update_mask(lab, lab[:, 0] >= black_level)
    return hist


def _read_log(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path) as fh:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    return [dict(r, step=int(r["step"])) for r in rows if r["step"] <= upto]


@torch.no_grad()
def save_samples(G: torch.nn.Module, frames: torch.Tensor, path: Path) -> None:
    """Rows: grey input, re-coloured, original (frames ``(B, H, W, 3)`` uint8)."""
    was_training = G.training
    G.eval()
    lab_n = colour.rgb_uint8_to_lab_n(frames).to(next(G.parameters()).device)
    L = lab_n[:, :1]
    fake = torch.cat([L, G(L).float()], dim=1)
    grey = torch.cat([L, torch.zeros_like(lab_n[:, 1:])], dim=1)
    rows = [colour.lab_n_to_rgb(x).cpu() for x in (grey, fake, lab_n)]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # (3, 3H, B*W)
    write_png(path, (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    G.train(was_training)


def pretrain(source: str | Path, out: str | Path, cfg: PretrainConfig | None = None,
             progress: bool = True, log=print) -> Path:
    """Pretrain a U-Net by GAN re-colorization of ``source``; returns the generator checkpoint.

    ``source`` is a video, a folder of videos, a folder of images or a frame store. Running again on
    the same ``out`` resumes from ``last.pt`` (and reuses the decoded frames).
    """
    cfg = cfg or PretrainConfig()
    if not cfg.skip_bad:
        probe_source(source)  # bad input fails at once, before devices are set up
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fabric = make_fabric(cfg)
    size = tuple(cfg.model.image_size)
    is_main = fabric.is_global_zero

    if is_main:
        with progress_bar("decoding frames", None, progress) as advance:
            store = build_store(source, out / "frames", size, cfg.frame_stride, cfg.max_frames,
                                progress=lambda n: advance(1), fps=cfg.frame_fps,
                                crop_fov=cfg.crop_fov, skip_bad=cfg.skip_bad, log=log)
    # rank 0 has decoded the frames (or found a store); the others open the same store
    root = fabric.broadcast(str(store.root) if is_main else None, src=0)
    if not is_main:
        store = FrameStore(root)
    if len(store) < cfg.batch_size:
        log(f"note: {len(store)} frames < batch size {cfg.batch_size}; batches will be smaller")

    hist_path = out / "ab_histogram.json"
    if hist_path.is_file():
        hist = colour.ABHistogram.load(hist_path)
    else:
        hist = ab_histogram(store, cfg.histogram_frames, cfg.loss.black_level)
        if is_main:
            hist.save(hist_path)
    weight_table = torch.from_numpy(hist.weights(cfg.loss.rebalance_alpha)).to(fabric.device)

    G, D = Colorizer(cfg.model), Discriminator(cfg.discriminator)
    if fabric.world_size > 1 and fabric.device.type != "cpu":  # PyTorch syncs batch norm on GPUs only
        D = torch.nn.SyncBatchNorm.convert_sync_batchnorm(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    step, weights = 0, None
    state_path = out / "last.pt"
    if state_path.is_file():
        state = load_weights_only(state_path)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step = int(state["step"])
        weights = state.get("loss_weights")
        if weights is None and "auto" in (cfg.loss.lam, cfg.loss.phi):
            raise EndopatError(f"{state_path}: has no measured loss weights (written by an older endopat); "
                               "resume it with fixed weights (loss.lam 0.0625, loss.phi 0.125) or start a new --out")
        log(f"resuming from {state_path} at step {step}")
    history = _read_log(out / "losses.csv", step)
    G_net, D_net = G, D  # the plain modules: their state_dict keys do not change with compile/DDP
    G, opt_g = fabric.setup(prepare_module(G, cfg), opt_g)
    D, opt_d = fabric.setup(prepare_module(D, cfg), opt_d)

    loader = torch.utils.data.DataLoader(
        FrameDataset(store), batch_size=min(cfg.batch_size, len(store)), shuffle=True,
        drop_last=True, num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
    )
    loader = fabric.setup_dataloaders(loader)
    sample_idx = np.linspace(0, len(store) - 1, min(4, len(store))).astype(int)
    sample_frames = torch.from_numpy(np.stack([store[i] for i in sample_idx]))
    if weights is None:  # a fresh run: measure them now, once; a resumed run keeps its own
        weights = calibrate_weights(G_net, store, weight_table, cfg.loss, fabric.device)
    weights = {k: float(v) for k, v in weights.items()}
    log("loss weights: " + ", ".join(f"{k} {v:.4g}" for k, v in weights.items()))
    single = fabric.world_size == 1

    def save_all(at: int) -> None:
        if not is_main:
            return
        save_atomic({"step": at, "G": G_net.state_dict(), "D": D_net.state_dict(), "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict(), "loss_weights": weights,
                     "config": cfg.model_dump(mode="json")}, state_path)
        save_checkpoint(out / "generator.pt", kind="colorizer", model_cfg=cfg.model,
                        state_dict=unet_state(G_net),
                        provenance={"source": str(source), "steps": at, "frames": len(store),
                                    "loss_weights": weights, "pretrain": cfg.model_dump(mode="json")})
        atomic_write_csv(out / "losses.csv", LOG_FIELDS, history)

    with progress_bar("pretraining", cfg.steps, progress and is_main, completed=step) as advance:
        while step < cfg.steps:
            for batch in loader:
                if step >= cfg.steps:
                    break
                lab_n = colour.rgb_uint8_to_lab_n(batch)
                L, ab = lab_n[:, :1], lab_n[:, 1:]
                P = colour.pixel_weights(ab, weight_table)
                fake_ab = G(L)

                # discriminator step, eq. 5
                d_real, d_fake = judge(D, lab_n, torch.cat([L, fake_ab.detach()], dim=1))
                loss_d = losses.discriminator(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                fabric.backward(loss_d)
                opt_d.step()

                # generator step, eq. 1 (D frozen: its weight gradients would be discarded anyway)
                if single:
                    D.requires_grad_(False)
                d_fake_g = judge(D, lab_n, torch.cat([L, fake_ab], dim=1))[1]
                lg = losses.generator(d_fake_g, fake_ab, ab, P, **weights)
                opt_g.zero_grad(set_to_none=True)
                fabric.backward(lg.total)
                opt_g.step()
                if single:
                    D.requires_grad_(True)

                step += 1
                row = {"step": step, "loss_g": lg.total, "gan": lg.gan, "rebalanced": lg.rebalanced,
                       "l2": lg.l2, "loss_d": loss_d, "d_real": d_real.mean(), "d_fake": d_fake.mean()}
                row = {k: float(fabric.all_reduce(v.detach(), reduce_op="mean")) if torch.is_tensor(v)
                       else v for k, v in row.items()}
                history.append(row)
                advance(1, info=f"G {row['loss_g']:.3f} D {row['loss_d']:.3f} "
                                f"D(real) {row['d_real']:.2f} D(fake) {row['d_fake']:.2f}")
                if is_main and step % cfg.sample_every == 0:
                    save_samples(G_net, sample_frames, out / "samples" / f"step_{step:06d}.png")
                if step % cfg.checkpoint_every == 0:
                    save_all(step)
    save_all(step)
    if is_main:
        save_samples(G_net, sample_frames, out / "samples" / f"step_{step:06d}.png")
        from endopat.report.figures import plot_pretrain_losses

        plot_pretrain_losses(history, out / "losses.png")
        atomic_write_text(out / "pretrain.json", json.dumps(
            {"source": str(source), "frames": len(store), "steps": step, "loss_weights": weights,
             "config": cfg.model_dump(mode="json")}, indent=2))
    fabric.barrier()
    return out / "generator.pt"


def summarize(out: str | Path) -> dict[str, Any]:
    """Mean of each logged loss over the last 10 % of steps."""
    rows = _read_log(Path(out) / "losses.csv", 1 << 62)
    tail = rows[-max(1, len(rows) // 10):]
    return {k: float(np.mean([r[k] for r in tail])) for k in LOG_FIELDS[1:]} if rows else {}
