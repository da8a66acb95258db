#!/usr/bin/env python3
"""A DoRA fixture for the tiny SDXL: PEFT's `use_dora` LoRA in the diffusers/PEFT layout.

Needs the tiny SDXL folder written by `make_fixtures.py` (read, never changed) and `peft`. CPU,
float32, one thread, fixed seeds. Writes, under crates/pixelgen-diffusion/tests/fixtures/dora/:

  dora.safetensors      a random rank-4 DoRA on the UNet (attention q/k/v/out, feed-forward,
                        proj_in/out, 3x3 resnet conv1), fp16, as PEFT's state dict names it
                        (`unet.<module>.lora_A.weight`, `.lora_B.weight`,
                        `.lora_magnitude_vector`), saved by `save_lora_weights` (alpha 8)
  expected.safetensors  one UNet call at t = 500 after `load_lora_weights`, `set_adapters` at
                        strength 0.7 and `fuse_lora`, and the base model's

The script checks every fused weight against DoRA's merge,
W' = m / ||W + s dW||_row * (W + s dW) with s = strength * alpha / r (norm per output channel).

Run from the repository root:  python tools/parity/make_dora_fixtures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as base  # noqa: E402
from diffusers import StableDiffusionXLPipeline  # noqa: E402

FIXTURES = base.FIXTURES
OUT = FIXTURES / "dora"
RANK, ALPHA, STRENGTH = 4, 8.0, 0.7
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out", "conv1"]


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    folder = FIXTURES / "tiny-sdxl"
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(808)
    unet_inputs = load_file(FIXTURES / "expected" / "unet.safetensors")

    pipe = base.load_folder(folder)
    pipe.unet.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, use_dora=True, init_lora_weights=False,
                                     target_modules=TARGETS))
    sd = get_peft_model_state_dict(pipe.unet)
    fresh = base.load_folder(folder)
    ref = dict(fresh.unet.named_modules())
    layers = {}
    for key in sorted(sd):
        v = sd[key]
        if key.endswith("lora_A.weight"):
            fan_in = v[0].numel()
            new = torch.randn(v.shape, generator=gen) / fan_in**0.5
        elif key.endswith("lora_B.weight"):
            new = torch.randn(v.shape, generator=gen) * 0.2
        else:  # the magnitude: the base weight's row norms, perturbed
            w = ref[key.removesuffix(".lora_magnitude_vector")].weight.detach()
            norms = w.reshape(w.shape[0], -1).norm(dim=1)
            new = (norms * (1 + 0.3 * torch.randn(norms.shape, generator=gen))).reshape(v.shape)
        layers[key] = new.half().contiguous()
    meta = {"r": RANK, "lora_alpha": ALPHA, "use_dora": True, "target_modules": TARGETS,
            "init_lora_weights": False}
    StableDiffusionXLPipeline.save_lora_weights(OUT, unet_lora_layers=layers, unet_lora_adapter_metadata=meta,
                                                weight_name="dora.safetensors")

    merged = base.load_folder(folder)
    merged.load_lora_weights(OUT, weight_name="dora.safetensors", adapter_name="dora")
    merged.set_adapters(["dora"], adapter_weights=[STRENGTH])
    merged.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=["dora"])
    merged.unload_lora_weights()
    # Check the fused weights against the DoRA formula.
    s = STRENGTH * ALPHA / RANK
    mods = dict(merged.unet.named_modules())
    worst, count = 0.0, 0
    for key in layers:
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removesuffix(".lora_A.weight")
        a, b = layers[key].float(), layers[f"{name}.lora_B.weight"].float()
        m = layers[f"{name}.lora_magnitude_vector"].float().reshape(-1, 1)
        w0 = ref[name].weight.detach()
        v = w0.reshape(w0.shape[0], -1) + s * (b.reshape(b.shape[0], -1) @ a.reshape(RANK, -1))
        want = (m / v.norm(dim=1, keepdim=True) * v).reshape(w0.shape)
        got = mods[name].weight.detach()
        assert (got - w0).abs().max() > 1e-3, name
        worst = max(worst, (got - want).abs().max().item())
        count += 1
    assert worst < 1e-5, worst
    print(f"{count} fused DoRA weights match m / ||W + s dW|| * (W + s dW) (max err {worst:.1e})")

    out = {"base.unet.t500": base.unet_t500(fresh, unet_inputs), "dora.unet.t500": base.unet_t500(merged, unet_inputs)}
    save_file(out, OUT / "expected.safetensors",
              metadata={"strength": str(STRENGTH), "layers": str(count),
                        "unet_inputs": "expected/unet.safetensors, t = 500"})
    total = sum(p.stat().st_size for p in OUT.glob("*.safetensors"))
    print(f"done: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
