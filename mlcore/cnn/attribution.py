"""Why the model called a candidate real: integrated gradients over the cutout, as a PNG.

Attribution is computed on the *normalised* input (what the network sees) for the
uncalibrated logit. The baseline is all zeros, which after normalisation is "pure
background" (median level, no line, no artefact): the attribution says which pixels move
the logit away from an empty cutout. Rendering uses Pillow only and Paul Tol's
colour-blind-safe diverging BuRd scheme (blue = against a real line, red = for).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # Pillow is needed only to render; mlcore imports with numpy + torch
    from PIL import Image

from mlcore.cnn.data import normalise
from mlcore.cnn.model import LineCNN
from mlcore.survey import LINE_COL

# Paul Tol, "BuRd" diverging scheme (colour-blind safe), low -> high.
TOL_BURD = ("#2166AC #4393C3 #92C5DE #D1E5F0 #F7F7F7 #FDDBC7 #F4A582 #D6604D #B2182B").split()
CHANNEL_NAMES = ("sum", "fiber 1", "fiber 2", "fiber 3", "fiber 4")


def integrated_gradients(
    model: LineCNN,
    x_norm: torch.Tensor,
    spec: torch.Tensor | None = None,
    steps: int = 32,
) -> np.ndarray:
    """(B, 5, 9, 100) normalised inputs -> (B, 5, 9, 100) attributions to the logit.

    Midpoint Riemann sum along the straight path from the zero baseline; the attributions
    of a sample sum to about logit(x) - logit(0) (completeness), checked in the tests.
    Spectrum inputs, when the model has them, are held fixed at their values.
    """
    model.eval()
    device = next(model.parameters()).device
    x = x_norm.to(device).float()
    alphas = (torch.arange(steps, device=device, dtype=torch.float32) + 0.5) / steps
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        path = alphas[:, None, None, None] * x[i : i + 1]  # (steps, 5, 9, 100)
        path.requires_grad_(True)
        s = None if spec is None else spec[i : i + 1].to(device).float().expand(steps, -1, -1)
        logit = model(path, s).sum()
        (grad,) = torch.autograd.grad(logit, path)
        out[i] = x[i] * grad.mean(0)
    return out.detach().cpu().numpy()


def attribute(
    model: LineCNN, raw: np.ndarray, spec: np.ndarray | None = None, steps: int = 32
) -> dict[str, np.ndarray]:
    """Raw (B, 5, 9, 100) cutouts -> {'x': normalised, 'attr': IG, 'prob': calibrated p}.

    ``spec``: (B, 2, L) windows from :func:`mlcore.cnn.data.spec_windows` for models with
    a 1D branch (held fixed; only the images are attributed).
    """
    x, _ = normalise(torch.as_tensor(np.asarray(raw, np.float32)))
    s = None if spec is None else torch.as_tensor(np.asarray(spec, np.float32))
    attr = integrated_gradients(model, x, spec=s, steps=steps)
    with torch.no_grad():
        dev = next(model.parameters()).device
        logit = model(x.to(dev), None if s is None else s.to(dev)).float().cpu()
        prob = torch.sigmoid(logit / model.temperature.cpu()).numpy()
    return {"x": x.numpy(), "attr": attr, "prob": prob}


def _hex(c: str) -> tuple[int, int, int]:
    return tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))


def _diverging(v: np.ndarray) -> np.ndarray:
    """values in [-1, 1] -> (..., 3) uint8 through Tol BuRd (linear interpolation)."""
    pal = np.array([_hex(c) for c in TOL_BURD], np.float64)
    t = (np.clip(v, -1, 1) + 1) / 2 * (len(pal) - 1)
    lo = np.floor(t).astype(int).clip(0, len(pal) - 2)
    f = (t - lo)[..., None]
    return (pal[lo] * (1 - f) + pal[lo + 1] * f).round().astype(np.uint8)


def _font(size: int):
    """PIL's default font at ``size`` px (a scalable one since Pillow 10.1; the fixed bitmap
    font where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def render_attribution(
    x_norm: np.ndarray,
    attr: np.ndarray,
    *,
    title: str = "",
    scale: tuple[int, int] = (4, 6),
    blend: float = 0.65,
) -> Image.Image:
    """One candidate's (5, 9, 100) input and attribution -> RGB image.

    For each channel (summed image, then fibers) two strips: the normalised cutout in grey,
    and the attribution in Tol BuRd blended over it (symmetric colour range, the same for
    all channels so they can be compared). A tick marks the nominal line column.
    """
    from PIL import Image, ImageDraw

    sx, sy = scale
    n_ch, rows, cols = x_norm.shape
    # The console shows the picture at about half size: labels are drawn at 20 px so they
    # read at ~10 px there (PIL's 11 px bitmap font came out about 4 px tall).
    font, small = _font(20), _font(17)
    pad, label_w, top = 4, 84, 52
    strip_h = rows * sy
    width = label_w + cols * sx + pad
    height = top + n_ch * (2 * strip_h + 3 * pad)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((pad, 2), title, fill="black", font=font)
    draw.text((pad, 28), "red: towards a real line, blue: against", fill="black", font=small)
    amax = float(np.abs(attr).max()) or 1.0
    for c in range(n_ch):
        g = np.clip((x_norm[c] + 3.0) / 9.0, 0, 1)  # -3..+6 sigma-ish -> black..white
        grey = (g * 255).astype(np.uint8)
        grey_rgb = np.repeat(grey[..., None], 3, axis=2)
        col = _diverging(attr[c] / amax).astype(np.float64)
        over = (blend * col + (1 - blend) * grey_rgb).round().astype(np.uint8)
        y0 = top + c * (2 * strip_h + 3 * pad)
        for k, arr in enumerate((grey_rgb, over)):
            tile = Image.fromarray(arr, "RGB").resize((cols * sx, strip_h), Image.NEAREST)
            img.paste(tile, (label_w, y0 + k * (strip_h + pad)))
        name = CHANNEL_NAMES[c] if c < 5 else str(c)
        draw.text((pad, y0 + strip_h - 12), name, fill="black", font=font)
        xt = label_w + LINE_COL * sx + sx // 2
        draw.line([(xt, y0 - 2), (xt, y0)], fill="black")
    return img


def save_attribution_png(
    path: str | Path, x_norm: np.ndarray, attr: np.ndarray, title: str = ""
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_attribution(x_norm, attr, title=title).save(path, format="PNG")
    return path
