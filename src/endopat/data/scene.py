"""Synthetic endoscopic scenes drawn by numpy and Pillow (what :mod:`endopat.data.synth` writes).

Each scene is a circular field of view on black, textured red/pink/yellow tissue with vessels,
blood, specular highlights and vignetting, and 1-3 grey metallic instruments (cylindrically shaded
shaft, darker wrist, two-jaw tip) entering from the border. Within a video the camera drifts,
instruments move, the jaws open and close, and smoke comes and goes. Everything is drawn from one
seed, so the same seed gives the same pixels. :data:`SITES` holds the domains (target, another
hospital, natural images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Site:
    name: str
    tissue: RGB
    tissue_light: RGB
    fat: RGB
    vessel: RGB
    blood: RGB
    fat_amount: float
    light: float
    warmth: float
    vignette: float
    circular_fov: bool
    instrument_grey: float
    instrument_tint: RGB
    tip_grey: float
    shaft_width: tuple[float, float]
    object_colours: tuple[RGB, ...] = ()
    smoke: float = 0.35


SITES: dict[str, Site] = {
    "target": Site(
        name="target",
        tissue=(0.70, 0.20, 0.17),
        tissue_light=(0.86, 0.47, 0.44),
        fat=(0.92, 0.78, 0.40),
        vessel=(0.42, 0.04, 0.07),
        blood=(0.33, 0.02, 0.03),
        fat_amount=0.35,
        light=1.0,
        warmth=0.0,
        vignette=0.55,
        circular_fov=True,
        instrument_grey=0.62,
        instrument_tint=(-0.03, 0.0, 0.035),
        tip_grey=0.42,
        shaft_width=(0.07, 0.11),
    ),
    "other": Site(
        name="other",
        tissue=(0.80, 0.36, 0.24),
        tissue_light=(0.93, 0.62, 0.55),
        fat=(0.96, 0.86, 0.58),
        vessel=(0.55, 0.10, 0.10),
        blood=(0.45, 0.05, 0.04),
        fat_amount=0.5,
        light=1.08,
        warmth=0.05,
        vignette=0.35,
        circular_fov=True,
        instrument_grey=0.30,
        instrument_tint=(0.0, 0.0, 0.02),
        tip_grey=0.55,
        shaft_width=(0.10, 0.15),
        smoke=0.2,
    ),
    "natural": Site(
        name="natural",
        tissue=(0.30, 0.55, 0.25),
        tissue_light=(0.45, 0.65, 0.92),
        fat=(0.55, 0.42, 0.26),
        vessel=(0.15, 0.30, 0.12),
        blood=(0.80, 0.75, 0.30),
        fat_amount=0.45,
        light=1.0,
        warmth=0.0,
        vignette=0.05,
        circular_fov=False,
        instrument_grey=0.5,
        instrument_tint=(0.0, 0.0, 0.0),
        tip_grey=0.5,
        shaft_width=(0.10, 0.18),
        object_colours=((0.85, 0.15, 0.55), (0.10, 0.35, 0.85), (0.95, 0.55, 0.05), (0.55, 0.20, 0.75)),
        smoke=0.0,
    ),
}


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field in [0, 1]: a ``cells x cells`` grid of uniforms, bicubically upsampled."""
    small = rng.random((cells, cells)).astype(np.float32)
    im = Image.fromarray(small, mode="F").resize((shape[1], shape[0]), Image.BICUBIC)
    field = np.asarray(im)
    lo, hi = field.min(), field.max()
    return (field - lo) / max(hi - lo, 1e-6)


def _blurred_strokes(size: int, rng: np.random.Generator, n: int, width: tuple[int, int], blur: float,
                     wiggle: float, ellipses: bool = False) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(n):
        if ellipses:
            cx, cy = rng.uniform(0, size, 2)
            rx, ry = rng.uniform(*width, 2)
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
            continue
        x, y = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * math.pi)
        pts = [(x, y)]
        for _ in range(12):
            angle += rng.normal(0, wiggle)
            step = size / 14
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            pts.append((x, y))
        draw.line(pts, fill=255, width=int(rng.integers(*width)), joint="curve")
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0


@dataclass
class _Instrument:
    entry: float  # angle of the entry point on the field-of-view border
    aim: float  # direction offset from the centre, radians
    depth: float  # insertion depth as a fraction of the image size
    width: float
    phase: float
    speed: float
    colour: np.ndarray
    tip_grey: float


class SceneGenerator:
    """One synthetic video: ``frame(t)`` draws frame ``t`` and its exact instrument mask."""

    def __init__(self, site: Site, size: int, rng: np.random.Generator):
        self.site, self.size, self.rng = site, size, rng
        s = size
        # per-video variation, as between real procedures: light level, white balance, tissue tone,
        # sensor noise
        self.gain = rng.uniform(0.75, 1.2)
        self.white = rng.normal(1.0, 0.05, 3).clip(0.85, 1.15)
        jitter = lambda c: np.clip(np.array(c) + rng.normal(0, 0.04, 3), 0, 1)  # noqa: E731
        self.colours = {k: jitter(getattr(site, k)) for k in ("tissue", "tissue_light", "fat", "vessel", "blood")}
        self.noise = rng.uniform(0.004, 0.02)
        margin = s // 4
        self.canvas = s + 2 * margin
        self.margin = margin
        c = self.canvas
        # tissue: low-frequency mix of dark red / light pink / yellow fat, plus fine texture
        self.mix = smooth_noise(rng, (c, c), 5)
        self.fat = np.clip((smooth_noise(rng, (c, c), 4) - (1 - site.fat_amount)) * 4, 0, 1)
        self.fine = smooth_noise(rng, (c, c), 24)
        self.shade = smooth_noise(rng, (c, c), 3)
        self.vessels = _blurred_strokes(c, rng, int(rng.integers(4, 9)), (1, 4), 0.8, 0.35)
        self.blood = _blurred_strokes(c, rng, int(rng.integers(0, 3)), (s // 20, s // 8), 3.0, 0, True)
        self.specular = _blurred_strokes(c, rng, int(rng.integers(6, 24)), (1, 4), 0.7, 0, True)
        self.smoke_field = smooth_noise(rng, (s, s), 4)
        self.smoke_phase = rng.uniform(0, 2 * math.pi)
        self.drift = rng.uniform(0, 2 * math.pi, 4)
        # field of view
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        self.yy, self.xx = yy, xx
        cx = s / 2 + rng.uniform(-0.03, 0.03) * s
        cy = s / 2 + rng.uniform(-0.03, 0.03) * s
        self.radius = rng.uniform(0.45, 0.5) * s
        self.centre = (cx, cy)
        r = np.hypot(xx - cx, yy - cy)
        if site.circular_fov:
            self.fov = r <= self.radius
            rr = np.clip(r / self.radius, 0, 1)
        else:
            self.fov = np.ones((s, s), dtype=bool)
            rr = np.clip(r / (0.75 * s), 0, 1)
        self.vignette = (1.0 - site.vignette * rr**2).astype(np.float32)
        self.instruments = [self._new_instrument() for _ in range(int(rng.integers(1, 4)))]

    def _new_instrument(self) -> _Instrument:
        rng, site = self.rng, self.site
        if site.object_colours:
            colour = np.array(site.object_colours[int(rng.integers(len(site.object_colours)))])
        else:
            g = site.instrument_grey * rng.uniform(0.65, 1.3)
            tint = np.array(site.instrument_tint) * rng.uniform(0.3, 1.5)
            colour = np.clip(np.array([g, g, g]) + tint, 0, 1)
        return _Instrument(
            entry=rng.uniform(0, 2 * math.pi),
            aim=rng.uniform(-0.35, 0.35),
            depth=rng.uniform(0.35, 0.7),
            width=rng.uniform(*site.shaft_width),
            phase=rng.uniform(0, 2 * math.pi),
            speed=rng.uniform(0.04, 0.12),
            colour=colour,
            tip_grey=site.tip_grey * rng.uniform(0.8, 1.2),
        )

    def _tissue(self, t: int) -> np.ndarray:
        s, m = self.size, self.margin
        d = self.drift
        ox = int(m + m * 0.8 * math.sin(0.05 * t + d[0]))
        oy = int(m + m * 0.8 * math.sin(0.04 * t + d[1]))
        win = (slice(oy, oy + s), slice(ox, ox + s))
        mix, fat, fine = self.mix[win], self.fat[win], self.fine[win]
        col = self.colours
        dark, light = col["tissue"], col["tissue_light"]
        rgb = dark[None, None] * (1 - mix[..., None]) + light[None, None] * mix[..., None]
        rgb = rgb * (0.85 + 0.3 * fine[..., None])
        rgb = rgb * (1 - fat[..., None]) + col["fat"][None, None] * fat[..., None]
        v = self.vessels[win][..., None] * 0.85
        rgb = rgb * (1 - v) + col["vessel"][None, None] * v
        b = np.clip(self.blood[win] * 1.5, 0, 1)[..., None]
        rgb = rgb * (1 - b) + col["blood"][None, None] * b
        rgb = rgb * (0.75 + 0.45 * self.shade[win][..., None])
        spec = np.clip(self.specular[win] * 2, 0, 1)[..., None]
        return rgb * (1 - spec) + spec

    def _draw_instrument(self, rgb: np.ndarray, mask: np.ndarray, inst: _Instrument, t: int) -> None:
        s = self.size
        cx, cy = self.centre
        ang = inst.entry + 0.25 * math.sin(inst.speed * t + inst.phase)
        ex, ey = cx + self.radius * math.cos(ang), cy + self.radius * math.sin(ang)
        direction = ang + math.pi + inst.aim + 0.15 * math.sin(0.7 * inst.speed * t + inst.phase)
        dx, dy = math.cos(direction), math.sin(direction)
        depth = s * inst.depth * (0.8 + 0.2 * math.sin(1.3 * inst.speed * t + 2 * inst.phase))
        w = inst.width * s
        px, py = self.xx - ex, self.yy - ey
        along = px * dx + py * dy
        across = -px * dy + py * dx
        u = across / (w / 2)  # -1..1 across the shaft
        shaft = (along <= depth) & (np.abs(u) <= 1)
        tip_len = 1.4 * w
        tt = (along - depth) / tip_len  # 0..1 along the tip
        jaw_open = 0.5 + 0.5 * math.sin(2.1 * inst.speed * t + inst.phase)
        taper = 1 - 0.55 * tt
        gap = (0.15 + 0.5 * jaw_open) * tt
        tip = (tt > 0) & (tt <= 1) & (np.abs(u) <= taper) & (np.abs(u) >= gap * (tt > 0.25))
        shape = shaft | tip
        if not shape.any():
            return
        cyl = np.sqrt(np.clip(1 - u**2, 0, 1))
        highlight = np.exp(-(((u - 0.35) / 0.15) ** 2)) * 0.55
        lit = (0.45 + 0.55 * cyl + highlight)[..., None]
        body = np.clip(inst.colour[None, None] * lit, 0, 1)
        wrist = (along > depth - 0.35 * w) & (along <= depth)
        tipc = np.clip(inst.tip_grey * lit, 0, 1)
        colour = np.where((tip | wrist)[..., None], tipc * (0.7 + 0.3 * wrist[..., None]), body)
        rgb[shape] = colour[shape]
        mask |= shape

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        site, s = self.site, self.size
        rgb = self._tissue(t)
        mask = np.zeros((s, s), dtype=bool)
        tissue = rgb.copy()
        for inst in self.instruments:
            self._draw_instrument(rgb, mask, inst, t)
        # soft shadow: the instruments' silhouette, offset away from the light and blurred
        off = max(1, s // 40)
        shifted = np.roll(mask, (off, off), axis=(0, 1)).astype(np.uint8) * 255
        shadow = np.asarray(Image.fromarray(shifted).filter(ImageFilter.GaussianBlur(s / 50)))
        shadow = 0.45 * shadow.astype(np.float32) / 255.0
        rgb = np.where(mask[..., None], rgb, tissue * (1 - shadow[..., None]))
        # lighting, warmth, smoke, sensor noise, black outside the field of view
        rgb = rgb * self.vignette[..., None] * (site.light * self.gain) * self.white[None, None]
        rgb = rgb + np.array([site.warmth, site.warmth * 0.3, -site.warmth])[None, None]
        smoke = site.smoke * max(0.0, math.sin(0.08 * t + self.smoke_phase)) * self.smoke_field
        rgb = rgb * (1 - smoke[..., None]) + 0.85 * smoke[..., None]
        rgb = rgb + self.rng.normal(0, self.noise, rgb.shape)
        rgb = np.where(self.fov[..., None], rgb, 0.0)
        mask &= self.fov
        return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), mask
