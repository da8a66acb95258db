#!/usr/bin/env python3
"""LyCORIS LoHa / LoKr fixtures for the tiny SDXL, with the reference merged by hand.

diffusers has no `fuse_lora` for LyCORIS files, so the reference here is the formulas of the
LyCORIS paper / README applied in torch to the tiny model's weights (kohya key names, as LyCORIS
and kohya's trainers write them):

  LoHa  dW = (hada_w1_a @ hada_w1_b) * (hada_w2_a @ hada_w2_b) * alpha / r    (r = rows of w1_b)
  LoKr  dW = kron(w1, w2) * scale, w1 = lokr_w1 or lokr_w1_a @ lokr_w1_b, w2 likewise (a conv w2
        is [o2, i2, kh, kw]); scale = alpha / r when a factor is decomposed (r = rows of its
        `_b`), 1 when both are full

Writes, under crates/pixelgen-diffusion/tests/fixtures/lycoris/:

  loha.safetensors, lokr.safetensors   the two files (fp16 factors, f32 `alpha` per layer)
  expected.safetensors                 per file: one UNet call at t = 500 and the prompt embeds +
                                       pooled embeds of the knight prompt, with W + strength * dW
                                       (strengths in the `strengths` metadata), and the same for
                                       the base model

Run from the repository root:  python tools/parity/make_lycoris_fixtures.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as base  # noqa: E402

FIXTURES = base.FIXTURES
OUT = FIXTURES / "lycoris"
RANK = 4
LOHA_RANK = 2  # LoHa stores four factors: a smaller rank keeps the file small
UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                "attn2.to_v", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
UNET_CONVS = ("down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.1.conv2", "up_blocks.2.resnets.0.conv1")
TEXT_TARGETS = ("self_attn.q_proj", "self_attn.v_proj", "mlp.fc1")
STRENGTHS = {"loha": 0.8, "lokr": 1.3}


def targets(pipe):
    out = []
    for name, mod in pipe.unet.named_modules():
        if name.endswith(UNET_TARGETS) or name in UNET_CONVS:
            out.append(("lora_unet_", name, mod))
    for name, mod in pipe.text_encoder.named_modules():
        if name.endswith(TEXT_TARGETS):
            name = name if name.startswith("text_model.") else "text_model." + name
            out.append(("lora_te1_", name, mod))
    return out


def h(t: torch.Tensor) -> torch.Tensor:
    """Rounded to fp16 (the files store fp16 factors, as most published ones do)."""
    return t.half().float()


def smallest_factor(n: int) -> int:
    for f in (2, 3, 4, 5):
        if n % f == 0:
            return f
    return 1


def make_loha(pipe, gen):
    tensors, deltas = {}, {}
    for i, (prefix, name, mod) in enumerate(targets(pipe)):
        w = mod.weight
        out, rest = w.shape[0], w[0].numel()
        key = prefix + name.replace(".", "_")
        alpha = [2.0, 4.0, 1.0][i % 3]  # per-layer alphas
        a1 = h(torch.randn((out, LOHA_RANK), generator=gen) * 0.5)
        b1 = h(torch.randn((LOHA_RANK, rest), generator=gen) / rest**0.5)
        a2 = h(torch.randn((out, LOHA_RANK), generator=gen) * 0.5)
        b2 = h(torch.randn((LOHA_RANK, rest), generator=gen) / rest**0.5)
        tensors.update({f"{key}.hada_w1_a": a1, f"{key}.hada_w1_b": b1, f"{key}.hada_w2_a": a2,
                        f"{key}.hada_w2_b": b2, f"{key}.alpha": torch.tensor(alpha)})
        deltas[(prefix, name)] = ((a1 @ b1) * (a2 @ b2) * (alpha / LOHA_RANK)).reshape(w.shape)
    return tensors, deltas


def make_lokr(pipe, gen):
    tensors, deltas = {}, {}
    for i, (prefix, name, mod) in enumerate(targets(pipe)):
        w = mod.weight
        out, inp = w.shape[0], w.shape[1]
        o1, i1 = smallest_factor(out), smallest_factor(inp)
        o2, i2 = out // o1, inp // i1
        key = prefix + name.replace(".", "_")
        alpha = 3.0
        w1 = h(torch.randn((o1, i1), generator=gen))
        tensors[f"{key}.lokr_w1"] = w1
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
        k = w.shape[2:]
        if w.dim() == 4 or i % 4 == 3:
            # Full w2 (convs: [o2, i2, kh, kw]): no decomposition, scale 1 whatever alpha says.
            w2 = h(torch.randn((o2, i2, *k), generator=gen) / (i2 * max(1, k.numel())) ** 0.5 * 0.3)
            tensors[f"{key}.lokr_w2"] = w2
            scale = 1.0
        else:
            a = h(torch.randn((o2, RANK), generator=gen) * 0.3)
            b = h(torch.randn((RANK, i2), generator=gen) / i2**0.5)
            tensors[f"{key}.lokr_w2_a"] = a
            tensors[f"{key}.lokr_w2_b"] = b
            w2 = a @ b
            scale = alpha / RANK
        if w.dim() == 4:
            delta = torch.kron(w1.reshape(o1, i1, 1, 1), w2)
        else:
            delta = torch.kron(w1, w2)
        assert delta.shape == w.shape, (name, delta.shape, w.shape)
        deltas[(prefix, name)] = delta * scale
    return tensors, deltas


def apply(pipe, deltas, strength):
    for prefix, name, mod in targets(pipe):
        with torch.no_grad():
            mod.weight += strength * deltas[(prefix, name)]


def record(pipe, tag, out, unet_inputs):
    with torch.no_grad():
        pe, _, pooled, _ = pipe.encode_prompt(prompt=base.PROMPTS["knight"], device="cpu",
                                              num_images_per_prompt=1, do_classifier_free_guidance=False)
        out[f"{tag}.prompt_embeds"] = pe
        out[f"{tag}.pooled_prompt_embeds"] = pooled
        out[f"{tag}.unet.t500"] = base.unet_t500(pipe, unet_inputs)


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    folder = FIXTURES / "tiny-sdxl"
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(31337)
    unet_inputs = load_file(FIXTURES / "expected" / "unet.safetensors")
    out = {}
    pipe = base.load_folder(folder)
    record(pipe, "base", out, unet_inputs)
    meta = {"ss_network_module": "lycoris.kohya", "ss_base_model_version": "sdxl_base_v1-0"}
    for kind, make in (("loha", make_loha), ("lokr", make_lokr)):
        tensors, deltas = make(pipe, gen)
        tensors = {k: v if k.endswith(".alpha") else v.half() for k, v in tensors.items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / f"{kind}.safetensors",
                  metadata={**meta, "ss_network_args": json.dumps({"algo": kind})})
        merged = base.load_folder(folder)
        apply(merged, deltas, STRENGTHS[kind])
        record(merged, kind, out, unet_inputs)
        print(f"{kind}: {len(deltas)} layers")
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "expected.safetensors",
              metadata={"prompt": base.PROMPTS["knight"], "strengths": json.dumps(STRENGTHS),
                        "layers": str(len(targets(pipe)))})
    total = sum(p.stat().st_size for p in OUT.glob("*.safetensors"))
    print(f"done: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
