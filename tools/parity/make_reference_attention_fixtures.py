#!/usr/bin/env python3
"""Expected outputs of reference attention (StyleAligned-style shared self-attention) on the tiny SDXL.

Loads `crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl/` with diffusers, installs
`SharedAttnProcessor` (below) on every self-attention (`attn1`) of the UNet and diffusers'
`AttnProcessor2_0` everywhere else, and records in
`crates/pixelgen-diffusion/tests/fixtures/reference/expected.safetensors`:

  unet.*        one UNet call on a CFG batch of 3 frames x 2 halves (8x8 latents, t = 500) at
                strengths 1.0 and 0.5 (AdaIN of queries and keys on) and 1.0 without AdaIN
  first_frame.* a 4-step CFG 5 set of 3 frames, frame 0 the reference, strength 1
  image.*       the same with an image reference (an extra batch item noised to each step's sigma
                with one recorded draw, output discarded), strength 0.8

The semantics (the Rust side implements the same, see `src/reference.rs`): in each batch group
(the two CFG halves), item 0 is the reference. Every other item has its queries and keys
AdaIN-normalised to the reference's statistics per channel over the token axis,
(x - mu_x) / sigma_x * sigma_ref + mu_ref with sigma = sqrt(var + 1e-5) and var the unbiased
variance sum((x - mu)^2) / max(L - 1, 1); it then attends over [reference K/V ; own K/V] with
ln(strength) added to the reference's logits. The reference attends to itself only. Strength 0
is plain attention.

The set denoising loop is written out here with diffusers' components (encode_prompt, the
folder's EulerDiscreteScheduler, the UNet, the VAE), as StableDiffusionXLPipeline runs them. The
image reference is encoded to its latent mean (times the VAE scaling factor) and noised at step
i as mean + sigma_i * noise (EulerDiscreteScheduler.add_noise at that step).

Run from the repository root (CPU, f32, ~20 s):
    /work/venv-parity/bin/python tools/parity/make_reference_attention_fixtures.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import diffusers
from diffusers import EulerDiscreteScheduler
from diffusers.models.attention_processor import AttnProcessor2_0

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import FIXTURES, IMAGE, LATENT, load_folder  # noqa: E402

OUT = FIXTURES / "reference"
EPS = 1e-5
PROMPTS = [
    "a pixel art knight with a sword, 16-bit sprite",
    "a pixel art knight walking, 16-bit sprite",
    "a pixel art knight jumping, 16-bit sprite",
]
REFERENCE_PROMPT = "a pixel art knight, 16-bit sprite"
STEPS, GUIDANCE = 4, 5.0


def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sqrt(unbiased var + EPS) over the token axis (-2) of x [..., L, d]."""
    n = x.shape[-2]
    mu = x.mean(dim=-2, keepdim=True)
    var = ((x - mu) ** 2).sum(dim=-2, keepdim=True) / max(n - 1, 1)
    return mu, (var + EPS).sqrt()


def adain(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    mu, sd = stats(x)
    rmu, rsd = stats(ref)
    return (x - mu) / sd * rsd + rmu


class SharedAttnProcessor:
    """AttnProcessor2_0 for self-attention, with the batch's groups sharing with their item 0."""

    def __init__(self, strength: float, adain_queries: bool, adain_keys: bool, groups: int):
        self.strength = strength
        self.adain_queries = adain_queries
        self.adain_keys = adain_keys
        self.groups = groups

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        assert encoder_hidden_states is None and attention_mask is None
        assert attn.spatial_norm is None and attn.group_norm is None and attn.norm_q is None
        assert hidden_states.ndim == 3 and not attn.residual_connection
        b, length, _ = hidden_states.shape
        q = attn.to_q(hidden_states)
        k = attn.to_k(hidden_states)
        v = attn.to_v(hidden_states)
        heads = attn.heads
        d = k.shape[-1] // heads

        def split(t):
            return t.view(t.shape[0], -1, heads, d).transpose(1, 2)  # [n, H, L, d]

        q, k, v = split(q), split(k), split(v)
        m = b // self.groups
        assert m * self.groups == b
        if self.strength == 0 or m < 2:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            outs = []
            for g in range(self.groups):
                sl = slice(g * m, (g + 1) * m)
                qg, kg, vg = q[sl], k[sl], v[sl]
                q0, k0, v0 = qg[:1], kg[:1], vg[:1]
                outs.append(F.scaled_dot_product_attention(q0, k0, v0))
                qo, ko, vo = qg[1:], kg[1:], vg[1:]
                if self.adain_queries:
                    qo = adain(qo, q0)
                if self.adain_keys:
                    ko = adain(ko, k0)
                n = qo.shape[0]
                kc = torch.cat([k0.expand(n, -1, -1, -1), ko], dim=2)
                vc = torch.cat([v0.expand(n, -1, -1, -1), vo], dim=2)
                scores = qo @ kc.transpose(-1, -2) * attn.scale
                bias = torch.zeros(kc.shape[2])
                bias[: k0.shape[2]] = math.log(self.strength)
                probs = (scores + bias).softmax(dim=-1)
                outs.append(probs @ vc)
            out = torch.cat(outs, dim=0)
        out = out.transpose(1, 2).reshape(b, -1, heads * d)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        return out / attn.rescale_output_factor


def install(unet, strength, adain_queries=True, adain_keys=True, groups=2):
    procs = {}
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            procs[name] = SharedAttnProcessor(strength, adain_queries, adain_keys, groups)
        else:
            procs[name] = AttnProcessor2_0()
    unet.set_attn_processor(procs)


def conditioning(pipe, prompts: list[str]):
    """CFG conditioning for a batch of prompts: [negatives ; positives] (zero negatives)."""
    pe, npe, pooled, npooled = pipe.encode_prompt(
        prompt=prompts, device="cpu", num_images_per_prompt=1,
        do_classifier_free_guidance=True, negative_prompt=None,
    )
    ehs = torch.cat([npe, pe])
    text_embeds = torch.cat([npooled, pooled])
    time_ids = torch.tensor([[IMAGE, IMAGE, 0, 0, IMAGE, IMAGE]] * (2 * len(prompts)), dtype=torch.float32)
    return ehs, text_embeds, time_ids


def run_set(pipe, init, strength, reference_image=None, reference_noise=None):
    """4-step CFG set: one initial draw `init` [1,4,h,w] for every frame; returns latents, image."""
    unet, vae = pipe.unet, pipe.vae
    n = len(PROMPTS)
    sched = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(STEPS)
    prompts = ([REFERENCE_PROMPT] if reference_image is not None else []) + PROMPTS
    ehs, text_embeds, time_ids = conditioning(pipe, prompts)
    install(unet, strength)
    ref_latent = None
    if reference_image is not None:
        ref_latent = vae.encode(reference_image * 2 - 1).latent_dist.mean * vae.config.scaling_factor
    latents = (init * sched.init_noise_sigma).repeat(n, 1, 1, 1)
    for i, t in enumerate(sched.timesteps):
        half = latents
        if ref_latent is not None:
            noisy = ref_latent + sched.sigmas[i] * reference_noise
            half = torch.cat([noisy, latents])
        inp = sched.scale_model_input(torch.cat([half, half]), t)
        pred = unet(inp, t, encoder_hidden_states=ehs,
                    added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        e = 0 if ref_latent is None else 1
        items = n + e
        uncond, text = pred[e:items], pred[items + e:]
        guided = uncond + GUIDANCE * (text - uncond)
        latents = sched.step(guided, t, latents).prev_sample
    image = vae.decode(latents / vae.config.scaling_factor).sample
    image = (image / 2 + 0.5).clamp(0, 1)
    return latents, image


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    pipe = load_folder(FIXTURES / "tiny-sdxl")
    out = {}
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        # (a) one UNet call: 3 frames x 2 CFG halves.
        latents = torch.randn((6, 4, LATENT, LATENT), generator=gen)
        ehs, text_embeds, time_ids = conditioning(pipe, PROMPTS)
        out.update({"unet.latents": latents, "unet.encoder_hidden_states": ehs,
                    "unet.text_embeds": text_embeds, "unet.time_ids": time_ids})
        for tag, strength, ada in (("s1", 1.0, True), ("s05", 0.5, True), ("s1_noadain", 1.0, False)):
            install(pipe.unet, strength, ada, ada)
            out[f"unet.{tag}.sample"] = pipe.unet(
                latents, torch.tensor(500.0), encoder_hidden_states=ehs,
                added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample

        # (b) sets: frame 0 as the reference, and an image reference.
        init = torch.randn((1, 4, LATENT, LATENT), generator=gen)
        out["first_frame.initial_latents"] = init
        lat, img = run_set(pipe, init, 1.0)
        out["first_frame.latents"], out["first_frame.image"] = lat, img

        ref_image = torch.rand((1, 3, IMAGE, IMAGE), generator=gen)
        ref_noise = torch.randn((1, 4, LATENT, LATENT), generator=gen)
        out["image.reference_image"] = ref_image
        out["image.reference_noise"] = ref_noise
        lat, img = run_set(pipe, init, 0.8, ref_image, ref_noise)
        out["image.latents"], out["image.image"] = lat, img
    meta = {
        "prompts": json.dumps(PROMPTS),
        "reference_prompt": REFERENCE_PROMPT,
        "steps": str(STEPS),
        "guidance_scale": str(GUIDANCE),
        "height": str(IMAGE),
        "width": str(IMAGE),
        "unet_timestep": "500",
        "first_frame_strength": "1.0",
        "image_strength": "0.8",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "expected.safetensors", metadata=meta)
    print("wrote", OUT / "expected.safetensors", (OUT / "expected.safetensors").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
