#!/usr/bin/env python3
"""Expected outputs of masked generation (inpaint) on the tiny SDXL, for `tests/inpaint_parity.rs`.

Loads `crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl/` (never changes it), runs diffusers'
`StableDiffusionXLInpaintPipeline` on it (4 steps, CFG 5, the folder's Euler scheduler) and
writes `crates/pixelgen-diffusion/tests/fixtures/inpaint/`:

  unet-9ch/        the tiny UNet with `in_channels=9` (an SDXL inpainting UNet: latents, mask,
                   masked-image latents), same config and seed otherwise; the Rust test puts it
                   in a copy of `tiny-sdxl/` in place of `unet/`
  expected.safetensors, per case `<case>.`:
    noise.N        every draw of diffusers' `randn_tensor` in order (VAE samples, initial noise)
    stepN.latents  latents after each step (callback_on_step_end)
    latents        final latents; `image` the decoded image in [0, 1]
    mask_pixels    the mask after diffusers' mask processor (binarised at 0.5), 1x1x32x32
    mask_latent    that mask resized to the latents (nearest), 1x1x8x8
  plus `image` (the input, 1x3x32x32 in [0, 1]), `mask` (the rectangle, 1 = repaint) and
  `blurred` (the rectangle as an 8-bit PIL image after `mask_processor.blur(mask, 4)`, / 255),
  and `blur.noisy` (a random 8-bit 32x24 mask / 255) with `blur.noisy.rR` its PIL blur at
  radius R for R in BLUR_RADII (fractional radii, and radii past the image's size).

Cases: `s100` and `s075` (4-channel UNet, the rectangle, strength 1 and 0.75), `blur` (strength
0.75, the rectangle blurred with blur_factor 4 before the mask processor, as diffusers' docs
show), `nine` and `nine075` (the 9-channel UNet, strength 1 and 0.75).

Run from the repository root (CPU, f32, one thread, ~20 s):
    /work/venv-parity/bin/python tools/parity/make_inpaint_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import diffusers
from diffusers import StableDiffusionXLInpaintPipeline, UNet2DConditionModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import FIXTURES, IMAGE, LATENT, PROMPTS, load_folder  # noqa: E402

OUT = FIXTURES / "inpaint"
STEPS, GUIDANCE, BLUR = 4, 5.0, 4
# The rectangle to repaint, in pixels: rows 6..22, columns 3..19 (not aligned to the VAE's 4x4
# cells, so the nearest-neighbour downsampling to the latents matters).
TOP, BOTTOM, LEFT, RIGHT = 6, 22, 3, 19
BLUR_RADII = ["0.3", "1", "1.5", "4", "7.25", "20", "60"]


class Recorder:
    """Wraps diffusers' `randn_tensor` in the modules that call it and keeps every draw."""

    def __init__(self, modules):
        self.modules = modules
        self.real = modules[0].randn_tensor
        self.draws = []

    def __enter__(self):
        def recording(*args, **kwargs):
            value = self.real(*args, **kwargs)
            self.draws.append(value.clone())
            return value

        for m in self.modules:
            m.randn_tensor = recording
        return self

    def __exit__(self, *exc):
        for m in self.modules:
            m.randn_tensor = self.real


def nine_channel_unet(folder: Path) -> UNet2DConditionModel:
    config = UNet2DConditionModel.load_config(folder / "unet")
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    config["in_channels"] = 9
    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(config)


def run_case(pipe, name, image, mask_image, strength, out):
    from diffusers.models.autoencoders import vae as vae_module
    from diffusers.pipelines.stable_diffusion_xl import pipeline_stable_diffusion_xl_inpaint as inp_module

    trace = []

    def record(_pipe, _i, _t, kwargs):
        trace.append(kwargs["latents"].clone())
        return kwargs

    common = dict(
        prompt=PROMPTS["knight"],
        negative_prompt=None,
        image=image,
        mask_image=mask_image,
        strength=strength,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        height=IMAGE,
        width=IMAGE,
    )
    with Recorder([vae_module, inp_module]) as rec:
        lat = pipe(
            **common, generator=torch.Generator().manual_seed(7), output_type="latent", callback_on_step_end=record
        ).images
        first = list(rec.draws)
        rec.draws.clear()
        img = pipe(**common, generator=torch.Generator().manual_seed(7), output_type="pt").images
    assert len(first) == len(rec.draws) and all(torch.equal(a, b) for a, b in zip(first, rec.draws))
    for i, d in enumerate(first):
        out[f"{name}.noise.{i}"] = d
    for i, s in enumerate(trace):
        out[f"{name}.step{i}.latents"] = s
    out[f"{name}.latents"] = lat
    out[f"{name}.image"] = img
    mask = pipe.mask_processor.preprocess(mask_image, height=IMAGE, width=IMAGE)
    out[f"{name}.mask_pixels"] = mask
    out[f"{name}.mask_latent"] = F.interpolate(mask, size=(LATENT, LATENT))
    print(name, "draws", [tuple(d.shape) for d in first], "steps", len(trace))
    return len(first)


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    folder = FIXTURES / "tiny-sdxl"
    base = load_folder(folder)
    pipe = StableDiffusionXLInpaintPipeline(**base.components, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)

    gen = torch.Generator().manual_seed(11)
    image = torch.rand((1, 3, IMAGE, IMAGE), generator=gen)
    mask = torch.zeros((1, 1, IMAGE, IMAGE))
    mask[..., TOP:BOTTOM, LEFT:RIGHT] = 1.0
    pil_mask = PIL.Image.fromarray((mask[0, 0].numpy() * 255).astype(np.uint8), mode="L")
    blurred = pipe.mask_processor.blur(pil_mask, blur_factor=BLUR)
    blurred_t = torch.from_numpy(np.asarray(blurred, dtype=np.float32) / 255.0)[None, None]

    out = {"image": image, "mask": mask, "blurred": blurred_t}
    noisy = (torch.rand((24, 32), generator=gen) * 255).round().to(torch.uint8).numpy()
    out["blur.noisy"] = torch.from_numpy(noisy.astype(np.float32) / 255.0)[None, None]
    for r in BLUR_RADII:
        b = pipe.mask_processor.blur(PIL.Image.fromarray(noisy, mode="L"), blur_factor=float(r))
        out[f"blur.noisy.r{r}"] = torch.from_numpy(np.asarray(b, dtype=np.float32) / 255.0)[None, None]
    draws = {}
    with torch.no_grad():
        draws["s100"] = run_case(pipe, "s100", image, mask, 1.0, out)
        draws["s075"] = run_case(pipe, "s075", image, mask, 0.75, out)
        draws["blur"] = run_case(pipe, "blur", image, blurred, 0.75, out)
        assert not torch.equal(out["blur.mask_latent"], out["s075.mask_latent"]), "blur changes nothing"

        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        unet9 = nine_channel_unet(folder)
        unet9.save_pretrained(OUT / "unet-9ch", safe_serialization=True)
        unet9 = UNet2DConditionModel.from_pretrained(OUT / "unet-9ch", torch_dtype=torch.float32)
        comps = dict(base.components)
        comps["unet"] = unet9
        pipe9 = StableDiffusionXLInpaintPipeline(**comps, add_watermarker=False)
        pipe9.set_progress_bar_config(disable=True)
        draws["nine"] = run_case(pipe9, "nine", image, mask, 1.0, out)
        draws["nine075"] = run_case(pipe9, "nine075", image, mask, 0.75, out)

    meta = {
        "prompt": PROMPTS["knight"],
        "steps": str(STEPS),
        "guidance_scale": str(GUIDANCE),
        "height": str(IMAGE),
        "width": str(IMAGE),
        "mask_blur": str(BLUR),
        "blur_radii": json.dumps(BLUR_RADII),
        "draws": json.dumps(draws),
        "versions": json.dumps(
            {"torch": torch.__version__, "diffusers": diffusers.__version__, "PIL": PIL.__version__}
        ),
    }
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "expected.safetensors", metadata=meta)
    print("done", meta["versions"])


if __name__ == "__main__":
    main()
