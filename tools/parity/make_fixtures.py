#!/usr/bin/env python3
"""Build the tiny random SDXL and the expected outputs that `pixelgen-diffusion` is tested against.

Everything runs on the CPU in float32 with fixed seeds, so the output is deterministic for a given
torch / diffusers / transformers version (pinned in requirements.txt). Writes:

  crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl/        a diffusers SDXL folder (safetensors, f32)
  crates/pixelgen-diffusion/tests/fixtures/expected/*.safetensors   expected outputs, see README.md

Run from the repository root:  python tools/parity/make_fixtures.py
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "pixelgen-diffusion" / "tests" / "fixtures"

# Tiny sizes. They keep every block type of SDXL, but with few channels.
IMAGE = 32  # pixels; the tiny VAE has 3 blocks, so latents are IMAGE / 4 = 8
LATENT = IMAGE // 4
TEXT1_HIDDEN = 32  # "CLIP-L" stand-in
TEXT2_HIDDEN = 48  # "CLIP-G" stand-in
TEXT2_PROJECTION = 24
TIME_EMBED_DIM = 8  # addition_time_embed_dim (SDXL: 256)

# The SDXL-base scheduler_config.json, as published for stabilityai/stable-diffusion-xl-base-1.0.
SDXL_BASE_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

PROMPTS = {
    "knight": "a pixel art knight with a sword, 16-bit sprite",
    "empty": "",
    "negative": "blurry, photo, 3d render",
    "long": " ".join(["pixel art castle on a hill at night with stars and a moon"] * 8),
    "punct": "Hello,   WORLD!! it's 2 swords & 1 shield...",
    "unicode": "Cafe\u0301  na\u00efve\tcr\u00e8me br\u00fbl\u00e9e, \u6771\u4eac \U0001f642 \u212b",
    "special": "a knight<|endoftext|>sword!",
}

# ---------------------------------------------------------------------------------------------
# Tokenizer: a CLIP-style byte-level BPE with a handful of merges learned from a tiny corpus.
# ---------------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 / CLIP reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("\u00a1"), ord("\u00ac") + 1))
    printable += list(range(ord("\u00ae"), ord("\u00ff") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def learn_merges(corpus: str, count: int) -> list[tuple[str, str]]:
    """Greedy BPE on the words of `corpus` (ties broken by the pair's text, so it is deterministic)."""
    table = bytes_to_unicode()
    words = collections.Counter(corpus.lower().split())
    seqs = {}
    for word, n in words.items():
        chars = [table[b] for b in word.encode("utf-8")]
        chars[-1] = chars[-1] + "</w>"
        seqs[word] = (chars, n)
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for chars, n in seqs.values():
            for a, b in zip(chars, chars[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], "".join(kv[0])))[0]
        merges.append(best)
        for word, (chars, n) in seqs.items():
            out, i = [], 0
            while i < len(chars):
                if i + 1 < len(chars) and (chars[i], chars[i + 1]) == best:
                    out.append(chars[i] + chars[i + 1])
                    i += 2
                else:
                    out.append(chars[i])
                    i += 1
            seqs[word] = (out, n)
    return merges


def write_tokenizer(folder: Path, pad_token: str) -> None:
    """Write vocab.json, merges.txt and the configs in the layout of the real SDXL tokenizer folders."""
    corpus = " ".join(PROMPTS.values()) + " pixel pixel art art sprite sprite knight castle"
    merges = learn_merges(corpus, 60)
    base = list(bytes_to_unicode().values())
    vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": pad_token,
        "unk_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = dict(special, model_max_length=77, do_lower_case=True, tokenizer_class="CLIPTokenizer")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def load_tokenizer(folder: Path, pad_token: str) -> CLIPTokenizer:
    vocab = json.loads((folder / "vocab.json").read_text())
    lines = (folder / "merges.txt").read_text().strip().split("\n")[1:]
    merges = [tuple(line.split(" ")) for line in lines]
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad_token, model_max_length=77)


# ---------------------------------------------------------------------------------------------
# Tiny models
# ---------------------------------------------------------------------------------------------


def build_pipeline(tok_dir: Path, tok2_dir: Path) -> StableDiffusionXLPipeline:
    tokenizer = load_tokenizer(tok_dir, "<|endoftext|>")
    tokenizer_2 = load_tokenizer(tok2_dir, "!")
    vocab_size = len(tokenizer.get_vocab())

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=LATENT,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16, 16),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        attention_head_dim=(1, 2, 2),  # diffusers' name for the number of heads (SDXL: 5, 10, 20)
        transformer_layers_per_block=(1, 1, 2),  # SDXL: 1, 2, 10
        use_linear_projection=True,
        norm_num_groups=4,
        cross_attention_dim=TEXT1_HIDDEN + TEXT2_HIDDEN,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM + TEXT2_PROJECTION,
        flip_sin_to_cos=True,
        freq_shift=0,
    )
    torch.manual_seed(1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=IMAGE,
        scaling_factor=0.13025,
        force_upcast=True,
    )
    common = dict(
        vocab_size=vocab_size,
        max_position_embeddings=77,
        num_hidden_layers=3,
        layer_norm_eps=1e-5,
        bos_token_id=0,  # as in the real SDXL configs: eos_token_id 2 selects transformers' "argmax"
        eos_token_id=2,  # pooling, which is right because <|endoftext|> has the highest id
        pad_token_id=1,
    )
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=TEXT1_HIDDEN,
            intermediate_size=4 * TEXT1_HIDDEN,
            num_attention_heads=4,
            hidden_act="quick_gelu",
            projection_dim=TEXT1_HIDDEN,
            **common,
        )
    )
    torch.manual_seed(3)
    text_encoder_2 = CLIPTextModelWithProjection(
        CLIPTextConfig(
            hidden_size=TEXT2_HIDDEN,
            intermediate_size=4 * TEXT2_HIDDEN,
            num_attention_heads=4,
            hidden_act="gelu",
            projection_dim=TEXT2_PROJECTION,
            **common,
        )
    )
    scheduler = EulerDiscreteScheduler.from_config(SDXL_BASE_SCHEDULER)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    return pipe


def save_folder(pipe: StableDiffusionXLPipeline, out: Path, tok_dir: Path, tok2_dir: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    pipe.save_pretrained(out, safe_serialization=True)
    # Keep the tokenizer folders in the layout of the published SDXL repositories (vocab.json +
    # merges.txt), whatever the installed transformers writes.
    for name, src in (("tokenizer", tok_dir), ("tokenizer_2", tok2_dir)):
        shutil.rmtree(out / name)
        shutil.copytree(src, out / name)
    # transformers 5 saves CLIPTextModel without the `text_model.` prefix that the published SDXL
    # checkpoints (saved by transformers 4) have; restore it so the fixture has the real layout.
    # transformers 5 still loads it (its CLIPTextModel strips the prefix on load).
    path = out / "text_encoder" / "model.safetensors"
    state = load_file(path)
    state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()}
    save_file(state, path, metadata={"format": "pt"})


def load_folder(folder: Path) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(
        folder,
        tokenizer=load_tokenizer(folder / "tokenizer", "<|endoftext|>"),
        tokenizer_2=load_tokenizer(folder / "tokenizer_2", "!"),
        torch_dtype=torch.float32,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------
# Scheduler expectations
# ---------------------------------------------------------------------------------------------

KINDS = {
    "euler": EulerDiscreteScheduler,
    "euler_ancestral": EulerAncestralDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
    "lcm": LCMScheduler,
}


class NoiseFeed:
    """Stands in for diffusers' `randn_tensor` inside a scheduler module: hands out recorded noise."""

    def __init__(self):
        self.queue = []

    def __call__(self, shape, **kwargs):
        noise = self.queue.pop(0)
        assert tuple(noise.shape) == tuple(shape), (noise.shape, shape)
        return noise.clone()


def unet_t500(pipe: StableDiffusionXLPipeline, unet_inputs: dict) -> torch.Tensor:
    """The UNet's prediction at t = 500 on the recorded inputs of `expected/unet.safetensors`
    (the LoRA, LyCORIS, DoRA and fast-sampler fixtures compare their UNets there)."""
    with torch.no_grad():
        return pipe.unet(
            unet_inputs["latents"], torch.tensor(500.0),
            encoder_hidden_states=unet_inputs["encoder_hidden_states"],
            added_cond_kwargs={"text_embeds": unet_inputs["text_embeds"], "time_ids": unet_inputs["time_ids"]},
        ).sample


def scheduler_cases() -> list[dict]:
    cases = []

    def add(kind, steps, overrides=None, eta=0.0, tag=""):
        overrides = dict(overrides or {})
        name = f"{kind}.{steps}"
        for key in sorted(overrides):
            value = overrides[key]
            short = {"timestep_spacing": "", "prediction_type": "", "use_karras_sigmas": "karras"}.get(key, key)
            if isinstance(value, bool):
                name += f".{short}" if value else f".no_{short}"
            else:
                name += f".{short}{value}" if short else f".{value}"
        if eta:
            name += f".eta{eta}"
        name += tag
        cases.append({"name": name, "kind": kind, "steps": steps, "overrides": overrides, "eta": eta})

    for kind in KINDS:
        for spacing in ("leading", "trailing", "linspace"):
            for steps in (1, 4, 8, 30):
                add(kind, steps, {"timestep_spacing": spacing})
        add(kind, 4, {"timestep_spacing": "trailing", "prediction_type": "v_prediction"})
        add(kind, 8, {"timestep_spacing": "leading", "prediction_type": "v_prediction"})
        add(kind, 4, {"timestep_spacing": "leading", "steps_offset": 0})
        add(kind, 8, {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02})
    for kind in ("euler", "dpmpp_2m"):
        for spacing in ("leading", "trailing", "linspace"):
            for steps in (4, 8, 30):
                add(kind, steps, {"timestep_spacing": spacing, "use_karras_sigmas": True})
        add(kind, 8, {"use_karras_sigmas": True, "prediction_type": "v_prediction"})
    add("ddim", 4, {"timestep_spacing": "trailing"}, eta=0.5)
    add("ddim", 8, {"timestep_spacing": "leading", "prediction_type": "v_prediction"}, eta=1.0)
    add("ddim", 4, {"set_alpha_to_one": True})
    add("dpmpp_2m", 20, {"use_karras_sigmas": True}, tag=".order2_all")
    add("lcm", 4, {"original_inference_steps": 100})
    return cases


def run_scheduler_case(base_config: dict, case: dict, tensors: dict, gen: torch.Generator) -> dict:
    cls = KINDS[case["kind"]]
    sched = cls.from_config(base_config, **case["overrides"])
    n = case["steps"]
    sched.set_timesteps(n)
    p = case["name"]
    timesteps = sched.timesteps.clone()
    tensors[f"{p}.timesteps"] = timesteps.to(torch.float64)
    if hasattr(sched, "sigmas") and sched.sigmas is not None and len(sched.sigmas) == len(timesteps) + 1:
        tensors[f"{p}.sigmas"] = sched.sigmas.to(torch.float32).clone()
    tensors[f"{p}.init_noise_sigma"] = torch.tensor([float(sched.init_noise_sigma)], dtype=torch.float32)

    # A short trajectory with fixed model outputs (and noise for the stochastic samplers).
    recorded = n if (n <= 8 or case["name"].endswith("order2_all")) else 4
    shape = (1, 4, 4, 4)
    sample = torch.randn(shape, generator=gen) * float(sched.init_noise_sigma)
    tensors[f"{p}.sample0"] = sample.clone()
    feed = NoiseFeed()
    module = __import__(cls.__module__, fromlist=["randn_tensor"])
    original = getattr(module, "randn_tensor", None)
    if original is not None:
        module.randn_tensor = feed
    try:
        for i in range(recorded):
            t = timesteps[i]
            scaled = sched.scale_model_input(sample, t)
            model_output = torch.randn(shape, generator=gen)
            noise = torch.randn(shape, generator=gen)
            kwargs = {}
            if case["kind"] == "ddim":
                kwargs["eta"] = case["eta"]
                if case["eta"] > 0:
                    kwargs["variance_noise"] = noise
            else:
                feed.queue = [noise]
            sample = sched.step(model_output, t, sample, **kwargs).prev_sample
            tensors[f"{p}.step{i}.scaled"] = scaled.clone()
            tensors[f"{p}.step{i}.model_output"] = model_output
            tensors[f"{p}.step{i}.noise"] = noise
            tensors[f"{p}.step{i}.prev"] = sample.clone()
    finally:
        if original is not None:
            module.randn_tensor = original

    # img2img: the pipeline's timestep truncation by strength, then add_noise at the first kept step.
    strengths = []
    if n >= 2:
        original_sample = torch.randn(shape, generator=gen)
        noise = torch.randn(shape, generator=gen)
        tensors[f"{p}.img2img.original"] = original_sample
        tensors[f"{p}.img2img.noise"] = noise
        for strength in (0.3, 0.5, 0.75, 1.0):
            fresh = cls.from_config(base_config, **case["overrides"])
            fresh.set_timesteps(n)
            init_timestep = min(int(n * strength), n)
            t_start = max(n - init_timestep, 0)
            kept = fresh.timesteps[t_start * fresh.order :]
            key = f"{p}.img2img.s{int(round(strength * 100))}"
            tensors[f"{key}.t_start"] = torch.tensor([t_start], dtype=torch.int64)
            strengths.append(strength)
            if len(kept) == 0:
                continue
            if hasattr(fresh, "set_begin_index"):
                fresh.set_begin_index(t_start * fresh.order)
            noisy = fresh.add_noise(original_sample, noise, kept[:1].repeat(shape[0]))
            tensors[f"{key}.noisy"] = noisy
    return {**case, "recorded_steps": recorded, "strengths": strengths}


def make_scheduler_fixtures(base_config: dict, out: Path) -> None:
    gen = torch.Generator().manual_seed(1234)
    tensors = {}
    manifest = []
    for case in scheduler_cases():
        manifest.append(run_scheduler_case(base_config, case, tensors, gen))
    for beta_name, overrides in (("scaled_linear", {}), ("linear", {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02})):
        sched = DDIMScheduler.from_config(base_config, **overrides)
        tensors[f"tables.{beta_name}.alphas_cumprod"] = sched.alphas_cumprod.clone()
    meta = {"cases": json.dumps(manifest), "base_config": json.dumps(base_config)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "schedulers.safetensors", metadata=meta)
    print(f"schedulers: {len(manifest)} cases, {len(tensors)} tensors")


# ---------------------------------------------------------------------------------------------
# Model-level expectations (used from the next sessions on: CLIP, UNet, VAE, pipelines)
# ---------------------------------------------------------------------------------------------


def make_model_fixtures(pipe: StableDiffusionXLPipeline, folder: Path, out: Path) -> None:
    meta = {"prompts": json.dumps(PROMPTS)}

    # Token ids as the two tokenizers produce them (padded to 77, truncated).
    tok = {}
    for name, prompt in PROMPTS.items():
        for key, tokenizer in (("tokenizer", pipe.tokenizer), ("tokenizer_2", pipe.tokenizer_2)):
            ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            tok[f"{key}.{name}"] = ids.input_ids.to(torch.int64)
            plain = tokenizer(prompt, truncation=False).input_ids
            tok[f"{key}.{name}.untruncated_len"] = torch.tensor([len(plain)], dtype=torch.int64)
    save_file(tok, out / "tokens.safetensors", metadata=meta)

    # Text encoders: prompt embeds (penultimate hidden states of both, concatenated) and pooled.
    text = {}
    with torch.no_grad():
        for name, negative in (("knight_empty_negative", None), ("knight_negative", PROMPTS["negative"])):
            pe, npe, pooled, npooled = pipe.encode_prompt(
                prompt=PROMPTS["knight"],
                device="cpu",
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative,
            )
            text[f"{name}.prompt_embeds"] = pe
            text[f"{name}.negative_prompt_embeds"] = npe
            text[f"{name}.pooled_prompt_embeds"] = pooled
            text[f"{name}.negative_pooled_prompt_embeds"] = npooled
        # The raw encoders too, for debugging layer by layer.
        ids1 = tok["tokenizer.knight"]
        ids2 = tok["tokenizer_2.knight"]
        o1 = pipe.text_encoder(ids1, output_hidden_states=True)
        o2 = pipe.text_encoder_2(ids2, output_hidden_states=True)
        text["text_encoder.last_hidden_state"] = o1.last_hidden_state
        text["text_encoder.penultimate"] = o1.hidden_states[-2]
        text["text_encoder.pooler_output"] = o1.pooler_output
        text["text_encoder_2.last_hidden_state"] = o2.last_hidden_state
        text["text_encoder_2.penultimate"] = o2.hidden_states[-2]
        text["text_encoder_2.text_embeds"] = o2.text_embeds
    save_file({k: v.contiguous() for k, v in text.items()}, out / "text.safetensors", metadata=meta)

    # One UNet call, CFG-shaped batch of 2 (negative first, as the pipeline does).
    gen = torch.Generator().manual_seed(42)
    unet = {}
    with torch.no_grad():
        latents = torch.randn((2, 4, LATENT, LATENT), generator=gen)
        ehs = torch.cat([text["knight_negative.negative_prompt_embeds"], text["knight_negative.prompt_embeds"]])
        text_embeds = torch.cat(
            [text["knight_negative.negative_pooled_prompt_embeds"], text["knight_negative.pooled_prompt_embeds"]]
        )
        time_ids = torch.tensor([[IMAGE, IMAGE, 0, 0, IMAGE, IMAGE]] * 2, dtype=torch.float32)
        for t in (999.0, 500.0, 1.0):
            out_t = pipe.unet(
                latents,
                torch.tensor(t),
                encoder_hidden_states=ehs,
                added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
            ).sample
            unet[f"t{int(t)}.sample"] = out_t
    unet.update({"latents": latents, "encoder_hidden_states": ehs, "text_embeds": text_embeds, "time_ids": time_ids})
    save_file({k: v.contiguous() for k, v in unet.items()}, out / "unet.safetensors")

    # VAE: raw decode of latents and encode of an image (distribution parameters).
    gen = torch.Generator().manual_seed(7)
    vae = {}
    with torch.no_grad():
        z = torch.randn((1, 4, LATENT, LATENT), generator=gen)
        vae["decode.latents"] = z
        vae["decode.image"] = pipe.vae.decode(z).sample
        x = torch.rand((1, 3, IMAGE, IMAGE), generator=gen) * 2 - 1
        dist = pipe.vae.encode(x).latent_dist
        vae["encode.image"] = x
        vae["encode.mean"] = dist.mean
        vae["encode.logvar"] = dist.logvar
        vae["encode.std"] = dist.std
    save_file({k: v.contiguous() for k, v in vae.items()}, out / "vae.safetensors")

    # Full pipelines, 4 steps, CFG 5, from fixed initial latents; default (Euler, SDXL-base config) scheduler.
    gen = torch.Generator().manual_seed(99)
    runs = {}
    steps, guidance = 4, 5.0
    init = torch.randn((1, 4, LATENT, LATENT), generator=gen)
    runs["txt2img.initial_latents"] = init
    trace = []

    def record(_pipe, _i, _t, kwargs):
        trace.append(kwargs["latents"].clone())
        return kwargs

    with torch.no_grad():
        common = dict(
            prompt=PROMPTS["knight"],
            negative_prompt=None,
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=IMAGE,
            width=IMAGE,
        )
        lat = pipe(**common, latents=init.clone(), output_type="latent", callback_on_step_end=record).images
        runs["txt2img.latents"] = lat
        for i, step_latents in enumerate(trace):
            runs[f"txt2img.step{i}.latents"] = step_latents
        img = pipe(**common, latents=init.clone(), output_type="pt").images
        runs["txt2img.image"] = img

        # img2img from a fixed image; the encoder's sample noise and the add_noise noise are recorded.
        i2i = StableDiffusionXLImg2ImgPipeline(**pipe.components, add_watermarker=False)
        i2i.set_progress_bar_config(disable=True)
        image = torch.rand((1, 3, IMAGE, IMAGE), generator=gen)
        runs["img2img.image"] = image
        recorded = []
        from diffusers.models.autoencoders import vae as vae_module
        from diffusers.pipelines.stable_diffusion_xl import pipeline_stable_diffusion_xl_img2img as i2i_module

        real = i2i_module.randn_tensor

        def recording(*args, **kwargs):
            value = real(*args, **kwargs)
            recorded.append(value.clone())
            return value

        vae_module.randn_tensor = recording
        i2i_module.randn_tensor = recording
        try:
            lat2 = i2i(
                **common,
                image=image,
                strength=0.75,
                generator=torch.Generator().manual_seed(5),
                output_type="latent",
            ).images
            first = list(recorded)
            recorded.clear()
            img2 = i2i(
                **common,
                image=image,
                strength=0.75,
                generator=torch.Generator().manual_seed(5),
                output_type="pt",
            ).images
        finally:
            vae_module.randn_tensor = real
            i2i_module.randn_tensor = real
        assert len(first) == 2, f"expected 2 noise draws in img2img, got {len(first)}"
        assert all(torch.equal(a, b) for a, b in zip(first, recorded))
        runs["img2img.encode_noise"] = first[0]
        runs["img2img.add_noise_noise"] = first[1]
        runs["img2img.latents"] = lat2
        runs["img2img.image_out"] = img2
    meta = {
        "prompt": PROMPTS["knight"],
        "negative_prompt": "None (force_zeros_for_empty_prompt: all-zero negative conditioning)",
        "steps": str(steps),
        "guidance_scale": str(guidance),
        "height": str(IMAGE),
        "width": str(IMAGE),
        "img2img_strength": "0.75",
    }
    save_file({k: v.contiguous() for k, v in runs.items()}, out / "pipeline.safetensors", metadata=meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU determinism: no thread-count-dependent reductions
    torch.use_deterministic_algorithms(True)

    folder = args.out / "tiny-sdxl"
    expected = args.out / "expected"
    work = args.out / ".tokenizers-tmp"
    if work.exists():
        shutil.rmtree(work)
    write_tokenizer(work / "tokenizer", "<|endoftext|>")
    write_tokenizer(work / "tokenizer_2", "!")

    pipe = build_pipeline(work / "tokenizer", work / "tokenizer_2")
    save_folder(pipe, folder, work / "tokenizer", work / "tokenizer_2")
    shutil.rmtree(work)

    # Everything below uses the folder as saved, so it also proves that diffusers loads it.
    pipe = load_folder(folder)
    expected.mkdir(parents=True, exist_ok=True)
    base_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    make_scheduler_fixtures(base_config, expected)
    make_model_fixtures(pipe, folder, expected)
    versions = {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }
    (expected / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    print("done:", versions)


if __name__ == "__main__":
    main()
