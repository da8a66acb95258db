#!/usr/bin/env python3
"""Fast-sampling fixtures for the tiny SDXL: an LCM-LoRA-shaped LoRA and a 4-step LCM run.

Needs the tiny SDXL folder written by `make_fixtures.py` (read, never changed) and `peft`.
CPU, float32, one thread, fixed seeds. Writes, under
crates/pixelgen-diffusion/tests/fixtures/fast/:

  lcm_lora.safetensors  a random rank-4 LoRA shaped like latent-consistency/lcm-lora-sdxl: UNet
                        only, on the modules its training script targets (attention q/k/v/out,
                        proj_in/out, feed-forward, resnet conv1/conv2/conv_shortcut/time_emb_proj,
                        down/upsampler convs), fp16 factors, in the diffusers/PEFT layout written
                        by `save_lora_weights` (alpha 8 over rank 4 in `lora_adapter_metadata`)
  expected.safetensors  after `load_lora_weights` + `fuse_lora` and `LCMScheduler.from_config`
                        (the tiny folder's SDXL-base scheduler config): one UNet call at t = 500,
                        and a 4-step txt2img at guidance 1.5 (negative prompt None) from
                        `initial_latents`, with the latents after every step, the noise the
                        scheduler drew at steps 0-2 (`step{i}.noise`), and the image

Run from the repository root:  python tools/parity/make_fast_fixtures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as base  # noqa: E402
from diffusers import LCMScheduler, StableDiffusionXLPipeline  # noqa: E402
from diffusers.schedulers import scheduling_lcm  # noqa: E402

FIXTURES = base.FIXTURES
OUT = FIXTURES / "fast"
RANK, ALPHA = 4, 8.0
STEPS, GUIDANCE = 4, 1.5
# The target modules of diffusers' train_lcm_distill_lora_sdxl.py (the LCM-LoRA SDXL recipe).
LCM_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
               "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")


def lcm_targets(unet):
    return [(n, m) for n, m in unet.named_modules()
            if any(n == t or n.endswith("." + t) for t in LCM_TARGETS) and hasattr(m, "weight")]


def make_lcm_lora(pipe, gen) -> dict:
    layers, factors = {}, {}
    for name, mod in lcm_targets(pipe.unet):
        w = mod.weight
        if w.dim() == 4:
            cout, cin, kh, kw = w.shape
            down = torch.randn((RANK, cin, kh, kw), generator=gen) / (cin * kh * kw) ** 0.5
            up = torch.randn((cout, RANK, 1, 1), generator=gen) * 0.2
        else:
            cout, cin = w.shape
            down = torch.randn((RANK, cin), generator=gen) / cin**0.5
            up = torch.randn((cout, RANK), generator=gen) * 0.2
        # Stored in fp16 like the published file; the reference loads exactly these values.
        down, up = down.half(), up.half()
        layers[f"{name}.lora_A.weight"] = down
        layers[f"{name}.lora_B.weight"] = up
        factors[name] = (down.float(), up.float())
    names = sorted(factors)
    meta = {"r": RANK, "lora_alpha": ALPHA, "target_modules": names, "init_lora_weights": False}
    StableDiffusionXLPipeline.save_lora_weights(
        OUT, unet_lora_layers=layers, unet_lora_adapter_metadata=meta, weight_name="lcm_lora.safetensors")
    return factors


def check_fused(pipe, fresh, factors) -> None:
    """Every targeted weight must equal base + alpha/r * up @ down (no key silently skipped)."""
    worst = 0.0
    ref = dict(fresh.unet.named_modules())
    for name, mod in lcm_targets(pipe.unet):
        down, up = factors[name]
        w0 = ref[name].weight.detach()
        want = w0 + (ALPHA / RANK) * (up.reshape(up.shape[0], -1) @ down.reshape(RANK, -1)).reshape(w0.shape)
        assert (mod.weight.detach() - w0).abs().max().item() > 1e-4, f"{name} unchanged"
        worst = max(worst, (mod.weight.detach() - want).abs().max().item())
    assert worst < 1e-5, worst
    print(f"  {len(factors)} fused weights match base + alpha/r * up @ down (max err {worst:.1e})")


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    folder = FIXTURES / "tiny-sdxl"
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(4242)
    pipe = base.load_folder(folder)
    factors = make_lcm_lora(pipe, gen)
    fresh = base.load_folder(folder)
    pipe.load_lora_weights(OUT, weight_name="lcm_lora.safetensors", adapter_name="lcm")
    pipe.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=["lcm"])
    pipe.unload_lora_weights()
    check_fused(pipe, fresh, factors)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)

    unet_inputs = load_file(FIXTURES / "expected" / "unet.safetensors")
    init = torch.randn((1, 4, base.LATENT, base.LATENT), generator=gen)
    out = {"initial_latents": init}
    trace, drawn = [], []
    real = scheduling_lcm.randn_tensor

    def recording(*args, **kwargs):
        value = real(*args, **kwargs)
        drawn.append(value.clone())
        return value

    def record(_pipe, _i, _t, kwargs):
        trace.append(kwargs["latents"].clone())
        return kwargs

    scheduling_lcm.randn_tensor = recording
    try:
        with torch.no_grad():
            out["unet.t500"] = base.unet_t500(pipe, unet_inputs)
            img = pipe(prompt=base.PROMPTS["knight"], negative_prompt=None, num_inference_steps=STEPS,
                       guidance_scale=GUIDANCE, height=base.IMAGE, width=base.IMAGE, latents=init.clone(),
                       generator=torch.Generator().manual_seed(11), output_type="pt",
                       callback_on_step_end=record).images
    finally:
        scheduling_lcm.randn_tensor = real
    assert len(trace) == STEPS and len(drawn) == STEPS - 1, (len(trace), len(drawn))
    for i, lat in enumerate(trace):
        out[f"step{i}.latents"] = lat
    for i, noise in enumerate(drawn):
        out[f"step{i}.noise"] = noise
    out["image"] = img
    out["timesteps"] = pipe.scheduler.timesteps.to(torch.float32)
    meta = {"prompt": base.PROMPTS["knight"], "steps": str(STEPS), "guidance_scale": str(GUIDANCE),
            "layers": str(len(factors)),
            "unet_inputs": "expected/unet.safetensors (latents, encoder_hidden_states, text_embeds, time_ids), t = 500"}
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "expected.safetensors", metadata=meta)
    print("timesteps", pipe.scheduler.timesteps.tolist())
    total = sum(p.stat().st_size for p in OUT.glob("*.safetensors"))
    print(f"done: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
