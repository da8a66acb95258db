#!/usr/bin/env python3
"""Build random LoRAs for the tiny SDXL and what diffusers computes with them fused in.

Needs the tiny SDXL folder written by `make_fixtures.py` (it is read, never changed) and `peft`
(diffusers' LoRA loading uses it). CPU, float32, one thread, fixed seeds. Writes, under
crates/pixelgen-diffusion/tests/fixtures/lora/:

  peft.safetensors      a LoRA in the diffusers/PEFT layout, saved by `save_lora_weights`
                        (`unet.*.lora_A.weight` / `lora_B.weight`, `text_encoder{,_2}.*`, r and
                        lora_alpha in the `lora_adapter_metadata` header entry)
  kohya.safetensors     a LoRA in the kohya / A1111 layout (`lora_unet_*`, `lora_te1_*`,
                        `lora_te2_*` with `lora_down` / `lora_up` / `alpha`) with `ss_*` and
                        `modelspec.*` metadata
  expected.safetensors  per case (`peft`, `kohya`, `both`): prompt embeds + pooled (positive and
                        negative), one UNet call, and a 3-step txt2img, after `load_lora_weights`,
                        `set_adapters` (UNet and text strengths separately) and `fuse_lora`

Run from the repository root:  python tools/parity/make_lora_fixtures.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diffusers import StableDiffusionXLPipeline

import make_fixtures as base

FIXTURES = base.FIXTURES
OUT = FIXTURES / "lora"
RANK = 4

# Modules that get a LoRA (suffixes of the module names in diffusers' / transformers' trees).
UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
UNET_CONV = re.compile(r"^(down_blocks\.0|up_blocks\.2)\.resnets\.\d+\.conv1$")  # 3x3 convs
TEXT_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1")

# Per case: {adapter: (unet strength, text strength)}.
CASES = {
    "peft": {"peft": (1.0, 1.0)},
    "kohya": {"kohya": (0.75, 1.5)},
    "both": {"peft": (0.8, 0.5), "kohya": (-0.6, 1.2)},
}
STEPS, GUIDANCE = 3, 5.0


def targets(pipe):
    """(component, module name, module) of every layer that gets a LoRA, in a fixed order."""
    out = []
    for name, mod in pipe.unet.named_modules():
        if name.endswith(UNET_TARGETS) or UNET_CONV.match(name):
            out.append(("unet", name, mod))
    for comp in ("text_encoder", "text_encoder_2"):
        for name, mod in getattr(pipe, comp).named_modules():
            if name.endswith(TEXT_TARGETS):
                if not name.startswith("text_model."):
                    name = "text_model." + name  # transformers 5 names it without the prefix
                out.append((comp, name, mod))
    return out


def random_pair(mod, gen):
    """(down, up) for one layer: down [r, in(, k, k)], up [out, r(, 1, 1)]."""
    w = mod.weight
    if w.dim() == 4:
        cout, cin, kh, kw = w.shape
        down = torch.randn((RANK, cin, kh, kw), generator=gen) / (cin * kh * kw) ** 0.5
        up = torch.randn((cout, RANK, 1, 1), generator=gen) * 0.3
    else:
        cout, cin = w.shape
        down = torch.randn((RANK, cin), generator=gen) / cin**0.5
        up = torch.randn((cout, RANK), generator=gen) * 0.3
    return down, up


def make_peft(pipe, gen) -> dict:
    """diffusers/PEFT layout, written by diffusers itself; alpha 8 over rank 4 (scale 2)."""
    layers = {"unet": {}, "text_encoder": {}, "text_encoder_2": {}}
    for comp, name, mod in targets(pipe):
        down, up = random_pair(mod, gen)
        layers[comp][f"{name}.lora_A.weight"] = down
        layers[comp][f"{name}.lora_B.weight"] = up
    meta = {}
    for comp in layers:
        # Suffix-matched by PEFT: without `text_model.` they fit transformers 4 and 5 trees alike.
        names = sorted({k.rsplit(".lora_", 1)[0].removeprefix("text_model.") for k in layers[comp]})
        meta[comp] = {"r": RANK, "lora_alpha": 8, "target_modules": names, "init_lora_weights": False}
    StableDiffusionXLPipeline.save_lora_weights(
        OUT,
        unet_lora_layers=layers["unet"],
        text_encoder_lora_layers=layers["text_encoder"],
        text_encoder_2_lora_layers=layers["text_encoder_2"],
        unet_lora_adapter_metadata=meta["unet"],
        text_encoder_lora_adapter_metadata=meta["text_encoder"],
        text_encoder_2_lora_adapter_metadata=meta["text_encoder_2"],
        weight_name="peft.safetensors",
    )
    return {(c, n): (layers[c][f"{n}.lora_A.weight"], layers[c][f"{n}.lora_B.weight"], 2.0)
            for c, n, _ in targets(pipe)}


def make_kohya(pipe, gen) -> dict:
    """kohya layout: underscores for dots, lora_down/lora_up/alpha (2 over rank 4: scale 0.5).

    One alpha for every layer, as kohya's trainer writes it: diffusers 0.42 ignores per-layer
    alphas that differ (its `alpha_pattern` keys keep the old `processor.to_q_lora` names), so a
    file with varying alphas would not give a trustworthy reference. The Rust side reads each
    layer's own alpha; its unit tests cover differing ones."""
    prefix = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}
    tensors, expected = {}, {}
    for comp, name, mod in targets(pipe):
        down, up = random_pair(mod, gen)
        alpha = 2.0
        key = prefix[comp] + name.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
        expected[(comp, name)] = (down, up, alpha / RANK)
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(RANK),
        "ss_network_alpha": "2.0",
        "ss_base_model_version": "sdxl_base_v1-0",
        "ss_sd_model_name": "tiny-sdxl",
        "ss_output_name": "tiny_pixel_lora",
        "ss_tag_frequency": json.dumps({"10_pixelart": {"pixelart": 10, "sprite": 4, "knight": 2}}),
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "modelspec.title": "Tiny Pixel LoRA",
        "modelspec.trigger_phrase": "pixelart, sprite",
        "modelspec.sai_model_spec": "1.0.0",
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "kohya.safetensors", metadata=meta)
    return expected


def check_fused(pipe, fresh, loras, strengths) -> None:
    """Every targeted weight must equal base + sum(strength * scale * up @ down) (guards against
    keys that diffusers silently skipped, and pins the formula the Rust side implements)."""
    worst = 0.0
    for comp, name, mod in targets(pipe):
        ref = [m for c, n, m in targets(fresh) if c == comp and n == name][0].weight.detach()
        want = ref.clone()
        for adapter, (su, st) in strengths.items():
            down, up, scale = loras[adapter][(comp, name)]
            s = su if comp == "unet" else st
            delta = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
            want += s * scale * delta.reshape(ref.shape)
        err = (mod.weight.detach() - want).abs().max().item()
        assert (mod.weight.detach() - ref).abs().max().item() > 1e-3, f"{comp}.{name} unchanged"
        worst = max(worst, err)
    assert worst < 1e-5, worst
    print(f"  fused weights match base + strength * alpha/r * up @ down (max err {worst:.1e})")


def record(pipe, case: str, out: dict, unet_inputs: dict, init: torch.Tensor) -> None:
    with torch.no_grad():
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompt=base.PROMPTS["knight"],
            device="cpu",
            num_images_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt=base.PROMPTS["negative"],
        )
        out[f"{case}.prompt_embeds"] = pe
        out[f"{case}.negative_prompt_embeds"] = npe
        out[f"{case}.pooled_prompt_embeds"] = pooled
        out[f"{case}.negative_pooled_prompt_embeds"] = npooled
        out[f"{case}.unet.t500"] = base.unet_t500(pipe, unet_inputs)
        img = pipe(
            prompt=base.PROMPTS["knight"],
            negative_prompt=base.PROMPTS["negative"],
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            height=base.IMAGE,
            width=base.IMAGE,
            latents=init.clone(),
            output_type="pt",
        ).images
        out[f"{case}.txt2img.image"] = img


# ---------------------------------------------------------------------------------------------
# Single-file checkpoint in the original SGM layout (as sd_xl_base_1.0.safetensors is laid out)
# ---------------------------------------------------------------------------------------------

RESNET_SGM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_ATTN_SGM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_prefixes(cfg) -> dict:
    """diffusers module prefix -> SGM prefix, from the UNet config's block layout."""
    n = len(cfg.block_out_channels)
    layers = cfg.layers_per_block if isinstance(cfg.layers_per_block, (list, tuple)) else [cfg.layers_per_block] * n
    m = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
         "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
         "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2",
         "mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
         "mid_block.resnets.1": "middle_block.2"}
    idx = 1
    for b in range(n):
        for j in range(layers[b]):
            m[f"down_blocks.{b}.resnets.{j}"] = f"input_blocks.{idx}.0"
            m[f"down_blocks.{b}.attentions.{j}"] = f"input_blocks.{idx}.1"
            idx += 1
        if b < n - 1:
            m[f"down_blocks.{b}.downsamplers.0.conv"] = f"input_blocks.{idx}.0.op"
            idx += 1
    idx = 0
    for b in range(n):
        has_attn = cfg.up_block_types[b].startswith("CrossAttn")
        for j in range(layers[n - 1 - b] + 1):
            m[f"up_blocks.{b}.resnets.{j}"] = f"output_blocks.{idx}.0"
            m[f"up_blocks.{b}.attentions.{j}"] = f"output_blocks.{idx}.1"
            idx += 1
        if b < n - 1:
            m[f"up_blocks.{b}.upsamplers.0.conv"] = f"output_blocks.{idx - 1}.{2 if has_attn else 1}.conv"
    return m


def vae_prefixes(cfg) -> dict:
    n = len(cfg.block_out_channels)
    m = {}
    for part in ("encoder", "decoder"):
        m[f"{part}.mid_block.resnets.0"] = f"{part}.mid.block_1"
        m[f"{part}.mid_block.resnets.1"] = f"{part}.mid.block_2"
        m[f"{part}.mid_block.attentions.0"] = f"{part}.mid.attn_1"
        m[f"{part}.conv_norm_out"] = f"{part}.norm_out"
    for i in range(n):
        for j in range(cfg.layers_per_block + 1):
            m[f"encoder.down_blocks.{i}.resnets.{j}"] = f"encoder.down.{i}.block.{j}"
            m[f"decoder.up_blocks.{i}.resnets.{j}"] = f"decoder.up.{n - 1 - i}.block.{j}"
        m[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = f"encoder.down.{i}.downsample.conv"
        m[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = f"decoder.up.{n - 1 - i}.upsample.conv"
    return m


def rename(key: str, prefixes: dict, inner: dict) -> str:
    for p in sorted(prefixes, key=len, reverse=True):
        if key.startswith(p + "."):
            rest = key[len(p) + 1 :]
            for a in sorted(inner, key=len, reverse=True):
                if rest.startswith(a + "."):
                    rest = inner[a] + rest[len(a) :]
                    break
            return f"{prefixes[p]}.{rest}"
    return key


def to_sgm(pipe) -> dict:
    """The tiny pipeline's weights as one SGM-layout state dict (the inverse of diffusers'
    single-file conversion; `make_checkpoint` checks it with `from_single_file`)."""
    out = {}
    for k, v in pipe.unet.state_dict().items():
        inner = RESNET_SGM if ".resnets." in k else {}
        out["model.diffusion_model." + rename(k, unet_prefixes(pipe.unet.config), inner)] = v
    for k, v in pipe.vae.state_dict().items():
        if ".attentions." in k:
            name = rename(k, vae_prefixes(pipe.vae.config), VAE_ATTN_SGM)
            v = v.reshape(*v.shape, 1, 1) if v.dim() == 2 else v
        else:
            name = rename(k, vae_prefixes(pipe.vae.config), {"conv_shortcut": "nin_shortcut"})
        out["first_stage_model." + name] = v
    for k, v in pipe.text_encoder.state_dict().items():
        k = k if k.startswith("text_model.") else "text_model." + k
        out["conditioner.embedders.0.transformer." + k] = v
    te2 = {k.removeprefix("text_model."): v for k, v in pipe.text_encoder_2.state_dict().items()}
    g = "conditioner.embedders.1.model."
    out[g + "token_embedding.weight"] = te2.pop("embeddings.token_embedding.weight")
    out[g + "positional_embedding"] = te2.pop("embeddings.position_embedding.weight")
    out[g + "ln_final.weight"] = te2.pop("final_layer_norm.weight")
    out[g + "ln_final.bias"] = te2.pop("final_layer_norm.bias")
    out[g + "text_projection"] = te2.pop("text_projection.weight").T.contiguous()
    for i in range(pipe.text_encoder_2.config.num_hidden_layers):
        src, dst = f"encoder.layers.{i}.", f"{g}transformer.resblocks.{i}."
        for part in ("weight", "bias"):
            out[dst + f"attn.in_proj_{part}"] = torch.cat(
                [te2.pop(src + f"self_attn.{x}_proj.{part}") for x in "qkv"])
            for a, b in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                         ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[dst + f"{b}.{part}"] = te2.pop(src + f"{a}.{part}")
    te2.pop("embeddings.position_ids", None)
    assert not te2, sorted(te2)
    return out


def make_checkpoint(folder: Path) -> None:
    """fp16 single-file checkpoint of the tiny SDXL, and what diffusers computes from it."""
    ckpt_dir = FIXTURES / "checkpoint"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    pipe = base.load_folder(folder)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in to_sgm(pipe).items()}
    path = ckpt_dir / "tiny-sdxl.fp16.safetensors"
    save_file(state, path, metadata={"modelspec.architecture": "stable-diffusion-xl-v1-base"})
    single = StableDiffusionXLPipeline.from_single_file(
        str(path), config=str(folder), torch_dtype=torch.float32,
        tokenizer=pipe.tokenizer, tokenizer_2=pipe.tokenizer_2, add_watermarker=False)
    single.set_progress_bar_config(disable=True)
    # diffusers' own converter must give back the folder's weights, rounded to fp16.
    for comp in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours = getattr(pipe, comp).state_dict()
        theirs = getattr(single, comp).state_dict()
        strip = lambda k: k.removeprefix("text_model.")
        ours = {strip(k): v for k, v in ours.items() if "position_ids" not in k}
        theirs = {strip(k): v for k, v in theirs.items() if "position_ids" not in k}
        assert set(ours) == set(theirs), (comp, set(ours) ^ set(theirs))
        for k in ours:
            want = ours[k].to(torch.float16).to(torch.float32)
            assert torch.equal(theirs[k], want), (comp, k)
    print(f"checkpoint: {len(state)} tensors; diffusers' from_single_file gives the folder weights in fp16")
    unet_inputs = load_file(FIXTURES / "expected" / "unet.safetensors")
    gen = torch.Generator().manual_seed(77)
    init = torch.randn((1, 4, base.LATENT, base.LATENT), generator=gen)
    out = {"txt2img.initial_latents": init}
    record(single, "single_file", out, unet_inputs, init)
    meta = {"prompt": base.PROMPTS["knight"], "negative_prompt": base.PROMPTS["negative"],
            "steps": str(STEPS), "guidance_scale": str(GUIDANCE)}
    save_file({k: v.contiguous() for k, v in out.items()}, ckpt_dir / "expected.safetensors", metadata=meta)


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    folder = FIXTURES / "tiny-sdxl"
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)
    pipe = base.load_folder(folder)
    loras = {"peft": make_peft(pipe, gen), "kohya": make_kohya(pipe, gen)}
    unet_inputs = load_file(FIXTURES / "expected" / "unet.safetensors")
    init = torch.randn((1, 4, base.LATENT, base.LATENT), generator=gen)
    out = {"txt2img.initial_latents": init}
    record(base.load_folder(folder), "base", out, unet_inputs, init)
    for case, strengths in CASES.items():
        print(case)
        fresh = base.load_folder(folder)
        pipe = base.load_folder(folder)
        for adapter in strengths:
            pipe.load_lora_weights(OUT, weight_name=f"{adapter}.safetensors", adapter_name=adapter)
        names = list(strengths)
        weights = [{"unet": su, "text_encoder": st, "text_encoder_2": st} for su, st in strengths.values()]
        pipe.set_adapters(names, adapter_weights=weights)
        pipe.fuse_lora(components=["unet", "text_encoder", "text_encoder_2"], lora_scale=1.0, adapter_names=names)
        pipe.unload_lora_weights()  # keeps the fused weights, drops the LoRA layers
        check_fused(pipe, fresh, loras, strengths)
        record(pipe, case, out, unet_inputs, init)
    meta = {
        "cases": json.dumps({c: {a: {"unet": su, "text": st} for a, (su, st) in s.items()} for c, s in CASES.items()}),
        "prompt": base.PROMPTS["knight"],
        "negative_prompt": base.PROMPTS["negative"],
        "steps": str(STEPS),
        "guidance_scale": str(GUIDANCE),
        "unet_inputs": "expected/unet.safetensors (latents, encoder_hidden_states, text_embeds, time_ids), t = 500",
    }
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "expected.safetensors", metadata=meta)
    make_checkpoint(folder)
    total = sum(p.stat().st_size for p in OUT.glob("*.safetensors"))
    print(f"done: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
