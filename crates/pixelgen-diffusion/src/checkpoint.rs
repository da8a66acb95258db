//! Single-file SDXL checkpoints in the original SGM/LDM layout (`sd_xl_base_1.0.safetensors`:
//! `model.diffusion_model.*`, `first_stage_model.*`, `conditioner.embedders.{0,1}.*`), read
//! through the diffusers names our modules ask for.
//!
//! The renaming is derived from the configs' block layout (the same rules diffusers' single-file
//! converter applies, written as prefix tables): UNet `input_blocks.N.M` / `middle_block` /
//! `output_blocks` and resnet `in_layers` / `emb_layers` / `out_layers` / `skip_connection`; VAE
//! `down.N.block.M` (decoder blocks in reverse order), `mid.attn_1` with 1x1-conv q/k/v/proj_out;
//! CLIP-L under `conditioner.embedders.0.transformer.` as is; OpenCLIP bigG under
//! `conditioner.embedders.1.model.` with its fused `in_proj` q/k/v split by rows and its
//! `text_projection` transposed. Nothing is converted up front: each tensor is read from the
//! memory map when a module asks for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};

use crate::config::{UNetConfig, VaeConfig};
use crate::error::{DiffusionError, Result};
use crate::lora::BaseWeights;

const UNET: &str = "model.diffusion_model.";
const VAE: &str = "first_stage_model.";
const CLIP_L: &str = "conditioner.embedders.0.transformer.";
const CLIP_G: &str = "conditioner.embedders.1.model.";

const RESNET: [(&str, &str); 6] = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
];
const VAE_RESNET: [(&str, &str); 1] = [("conv_shortcut", "nin_shortcut")];
const VAE_ATTENTION: [(&str, &str); 5] = [
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
];

/// diffusers module prefix -> SGM prefix, longest first.
#[derive(Debug, Clone, Default)]
struct Prefixes(Vec<(String, String)>);

impl Prefixes {
    fn new(mut list: Vec<(String, String)>) -> Self {
        list.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Self(list)
    }

    /// `name` with its longest known prefix replaced and, within it, the first matching inner
    /// rename of `inner`; names without a known prefix are kept.
    fn rename(&self, name: &str, inner: &[(&str, &str)]) -> String {
        for (from, to) in &self.0 {
            if let Some(rest) = name
                .strip_prefix(from.as_str())
                .and_then(|r| r.strip_prefix('.'))
            {
                for (a, b) in inner {
                    if let Some(tail) = rest.strip_prefix(a).filter(|t| t.starts_with('.')) {
                        return format!("{to}.{b}{tail}");
                    }
                }
                return format!("{to}.{rest}");
            }
        }
        name.to_string()
    }
}

fn s(a: impl Into<String>, b: impl Into<String>) -> (String, String) {
    (a.into(), b.into())
}

fn unet_prefixes(cfg: &UNetConfig) -> Result<Prefixes> {
    let n = cfg.block_out_channels.len();
    let layers = cfg.layers_per_block.expand(n, "unet layers_per_block")?;
    let mut m = vec![
        s("conv_in", "input_blocks.0.0"),
        s("time_embedding.linear_1", "time_embed.0"),
        s("time_embedding.linear_2", "time_embed.2"),
        s("add_embedding.linear_1", "label_emb.0.0"),
        s("add_embedding.linear_2", "label_emb.0.2"),
        s("conv_norm_out", "out.0"),
        s("conv_out", "out.2"),
        s("mid_block.resnets.0", "middle_block.0"),
        s("mid_block.attentions.0", "middle_block.1"),
        s("mid_block.resnets.1", "middle_block.2"),
    ];
    let mut idx = 1;
    for (b, &l) in layers.iter().enumerate() {
        for j in 0..l {
            m.push(s(
                format!("down_blocks.{b}.resnets.{j}"),
                format!("input_blocks.{idx}.0"),
            ));
            m.push(s(
                format!("down_blocks.{b}.attentions.{j}"),
                format!("input_blocks.{idx}.1"),
            ));
            idx += 1;
        }
        if b + 1 < n {
            m.push(s(
                format!("down_blocks.{b}.downsamplers.0.conv"),
                format!("input_blocks.{idx}.0.op"),
            ));
            idx += 1;
        }
    }
    let mut idx = 0;
    for b in 0..n {
        let attention = cfg
            .up_block_types
            .get(b)
            .is_some_and(|t| t.starts_with("CrossAttn"));
        let count = layers.get(n - 1 - b).copied().unwrap_or(0) + 1;
        for j in 0..count {
            m.push(s(
                format!("up_blocks.{b}.resnets.{j}"),
                format!("output_blocks.{idx}.0"),
            ));
            m.push(s(
                format!("up_blocks.{b}.attentions.{j}"),
                format!("output_blocks.{idx}.1"),
            ));
            idx += 1;
        }
        if b + 1 < n {
            let slot = if attention { 2 } else { 1 };
            m.push(s(
                format!("up_blocks.{b}.upsamplers.0.conv"),
                format!("output_blocks.{}.{slot}.conv", idx - 1),
            ));
        }
    }
    Ok(Prefixes::new(m))
}

fn vae_prefixes(cfg: &VaeConfig) -> Prefixes {
    let n = cfg.block_out_channels.len();
    let mut m = Vec::new();
    for part in ["encoder", "decoder"] {
        m.push(s(
            format!("{part}.mid_block.resnets.0"),
            format!("{part}.mid.block_1"),
        ));
        m.push(s(
            format!("{part}.mid_block.resnets.1"),
            format!("{part}.mid.block_2"),
        ));
        m.push(s(
            format!("{part}.mid_block.attentions.0"),
            format!("{part}.mid.attn_1"),
        ));
        m.push(s(
            format!("{part}.conv_norm_out"),
            format!("{part}.norm_out"),
        ));
    }
    for i in 0..n {
        for j in 0..=cfg.layers_per_block {
            m.push(s(
                format!("encoder.down_blocks.{i}.resnets.{j}"),
                format!("encoder.down.{i}.block.{j}"),
            ));
            m.push(s(
                format!("decoder.up_blocks.{i}.resnets.{j}"),
                format!("decoder.up.{}.block.{j}", n - 1 - i),
            ));
        }
        m.push(s(
            format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
            format!("encoder.down.{i}.downsample.conv"),
        ));
        m.push(s(
            format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
            format!("decoder.up.{}.upsample.conv", n - 1 - i),
        ));
    }
    Prefixes::new(m)
}

/// The SGM name of the diffusers UNet weight `name` (without the `model.diffusion_model.`
/// prefix), e.g. `down_blocks.1.attentions.0.proj_in.weight` -> `input_blocks.4.1.proj_in.weight`
/// in SDXL.
pub fn unet_sgm_name(cfg: &UNetConfig, name: &str) -> Result<String> {
    Ok(unet_rename(&unet_prefixes(cfg)?, name))
}

/// [`unet_sgm_name`] for many names: the prefix table is built once.
pub(crate) fn unet_renamer(cfg: &UNetConfig) -> Result<impl Fn(&str) -> String> {
    let p = unet_prefixes(cfg)?;
    Ok(move |name: &str| unet_rename(&p, name))
}

fn unet_rename(p: &Prefixes, name: &str) -> String {
    let inner: &[(&str, &str)] = if name.contains("resnets.") {
        &RESNET
    } else {
        &[]
    };
    p.rename(name, inner)
}

/// How one diffusers tensor is read from the checkpoint.
enum Source {
    /// Stored as is.
    Key(String),
    /// A 1x1 conv weight `[c, c, 1, 1]` that our module holds as a linear `[c, c]`.
    Squeeze(String),
    /// Rows `part * n .. (part + 1) * n` of a fused `[3n, ...]` q/k/v tensor.
    Third(String, usize),
    /// Stored transposed.
    Transposed(String),
}

/// Which network of the checkpoint a [`SgmPart`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Unet,
    Vae,
    ClipL,
    ClipG,
}

/// One network of an SGM checkpoint, read by diffusers names.
pub(crate) struct SgmPart {
    file: Arc<MmapedSafetensors>,
    part: Part,
    prefixes: Prefixes,
    /// The key prefix of the VAE: `first_stage_model.` in a checkpoint, empty in a VAE file.
    vae_root: &'static str,
}

impl SgmPart {
    fn source(&self, name: &str) -> Source {
        match self.part {
            Part::Unet => Source::Key(format!("{UNET}{}", unet_rename(&self.prefixes, name))),
            Part::Vae => {
                if name.contains(".attentions.") {
                    let sgm = self.prefixes.rename(name, &VAE_ATTENTION);
                    let key = format!("{}{sgm}", self.vae_root);
                    if name.ends_with(".weight") && !name.contains("group_norm") {
                        Source::Squeeze(key)
                    } else {
                        Source::Key(key)
                    }
                } else {
                    Source::Key(format!(
                        "{}{}",
                        self.vae_root,
                        self.prefixes.rename(name, &VAE_RESNET)
                    ))
                }
            }
            Part::ClipL => {
                let name = name.strip_prefix("text_model.").unwrap_or(name);
                let key = if name == "text_projection.weight" {
                    name.to_string()
                } else {
                    format!("text_model.{name}")
                };
                Source::Key(format!("{CLIP_L}{key}"))
            }
            Part::ClipG => clip_g_source(name.strip_prefix("text_model.").unwrap_or(name)),
        }
    }
}

fn clip_g_source(name: &str) -> Source {
    let key = |k: &str| format!("{CLIP_G}{k}");
    match name {
        "embeddings.token_embedding.weight" => return Source::Key(key("token_embedding.weight")),
        "embeddings.position_embedding.weight" => return Source::Key(key("positional_embedding")),
        "final_layer_norm.weight" => return Source::Key(key("ln_final.weight")),
        "final_layer_norm.bias" => return Source::Key(key("ln_final.bias")),
        "text_projection.weight" => return Source::Transposed(key("text_projection")),
        _ => {}
    }
    let Some(rest) = name.strip_prefix("encoder.layers.") else {
        return Source::Key(key(name));
    };
    let Some((layer, rest)) = rest.split_once('.') else {
        return Source::Key(key(name));
    };
    let block = format!("transformer.resblocks.{layer}.");
    for (i, qkv) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        if let Some(part) = rest
            .strip_prefix("self_attn.")
            .and_then(|r| r.strip_prefix(qkv))
            .and_then(|r| r.strip_prefix('.'))
        {
            return Source::Third(key(&format!("{block}attn.in_proj_{part}")), i);
        }
    }
    for (a, b) in [
        ("self_attn.out_proj", "attn.out_proj"),
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    ] {
        if let Some(tail) = rest.strip_prefix(a).filter(|t| t.starts_with('.')) {
            return Source::Key(key(&format!("{block}{b}{tail}")));
        }
    }
    Source::Key(key(name))
}

impl BaseWeights for SgmPart {
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        match self.source(name) {
            Source::Key(k) => self.file.load(&k, dev),
            Source::Squeeze(k) => {
                let t = self.file.load(&k, dev)?;
                match t.dims() {
                    [o, i, 1, 1] => t.reshape((*o, *i)),
                    _ => Ok(t),
                }
            }
            Source::Third(k, part) => {
                let t = self.file.load(&k, dev)?;
                let rows = t.dims().first().copied().unwrap_or(0);
                if rows % 3 != 0 {
                    return Err(candle_core::Error::Msg(format!(
                        "{k} has {rows} rows, not a fused q/k/v tensor"
                    )));
                }
                t.narrow(0, part * rows / 3, rows / 3)?.contiguous()
            }
            Source::Transposed(k) => self.file.load(&k, dev)?.t()?.contiguous(),
        }
    }

    fn contains(&self, name: &str) -> bool {
        let key = match self.source(name) {
            Source::Key(k) | Source::Squeeze(k) | Source::Third(k, _) | Source::Transposed(k) => k,
        };
        self.file.get(&key).is_ok()
    }
}

/// The four networks of an SGM-layout SDXL checkpoint (the VAE may be absent).
pub(crate) struct SgmCheckpoint {
    pub(crate) unet: SgmPart,
    pub(crate) vae: Option<SgmPart>,
    pub(crate) text_encoder: SgmPart,
    pub(crate) text_encoder_2: SgmPart,
}

fn wrong(path: &Path, what: impl Into<String>) -> DiffusionError {
    DiffusionError::Unsupported {
        feature: format!("checkpoint {}", path.display()),
        hint: what.into(),
    }
}

/// Opens `path` as an SDXL base checkpoint in the SGM layout; a checkpoint of another family
/// (SD1.x/2.x, SDXL refiner, SD3, Flux) is a clear error, and so is one without a VAE when
/// `need_vae` (a UNet-only file needs a separately given VAE).
pub(crate) fn open(
    path: &Path,
    unet: &UNetConfig,
    vae: &VaeConfig,
    need_vae: bool,
) -> Result<SgmCheckpoint> {
    let files = [PathBuf::from(path)];
    let file = Arc::new(crate::weights::mmap_safetensors(&files)?);
    let has = |prefix: &str| file.tensors().iter().any(|(k, _)| k.starts_with(prefix));
    let family = if has("cond_stage_model.") {
        Some("Stable Diffusion 1.x/2.x (`cond_stage_model.*`)")
    } else if has("model.diffusion_model.joint_blocks.") {
        Some("Stable Diffusion 3 (`joint_blocks`)")
    } else if has("double_blocks.") || has("model.diffusion_model.double_blocks.") {
        Some("Flux (`double_blocks`)")
    } else if has(UNET) && !has(CLIP_L) && has("conditioner.embedders.0.model.") {
        Some("the SDXL refiner (OpenCLIP only)")
    } else {
        None
    };
    if let Some(f) = family {
        return Err(wrong(
            path,
            format!(
                "it is a {f} checkpoint, not SDXL base: use an SDXL (base, Turbo, Lightning, fine-tune) checkpoint"
            ),
        ));
    }
    if !has(UNET) {
        if has("unet.") || has("down_blocks.") {
            return Err(wrong(
                path,
                "it has diffusers names: load its folder (`SdxlWeights::open`), or for a \
                 diffusers LoRA use `Lora::load`",
            ));
        }
        return Err(wrong(
            path,
            "no `model.diffusion_model.*` UNet weights: not an SDXL single-file checkpoint",
        ));
    }
    if need_vae && !has(VAE) {
        return Err(wrong(
            path,
            "it has no VAE (`first_stage_model.*`): it is a UNet-only file; give a VAE with \
             `SdxlWeights::open_single_file_with_vae` (a diffusers `vae/` folder such as \
             madebyollin/sdxl-vae-fp16-fix, or a VAE .safetensors file), or use a full checkpoint",
        ));
    }
    for (prefix, what) in [
        (
            CLIP_L,
            "first text encoder (`conditioner.embedders.0.transformer.*`)",
        ),
        (
            CLIP_G,
            "second text encoder (`conditioner.embedders.1.model.*`)",
        ),
    ] {
        if !has(prefix) {
            return Err(wrong(path, format!("it has no {what}")));
        }
    }
    let part = |part, prefixes| SgmPart {
        file: file.clone(),
        part,
        prefixes,
        vae_root: VAE,
    };
    Ok(SgmCheckpoint {
        unet: part(Part::Unet, unet_prefixes(unet)?),
        vae: has(VAE).then(|| part(Part::Vae, vae_prefixes(vae))),
        text_encoder: part(Part::ClipL, Prefixes::default()),
        text_encoder_2: part(Part::ClipG, Prefixes::default()),
    })
}

/// Opens a standalone VAE `.safetensors` file: diffusers names (`decoder.up_blocks.*`, as in
/// a `vae/diffusion_pytorch_model.safetensors`), the original LDM names (`decoder.up.*`, as in
/// `sdxl_vae.safetensors` files made for A1111/ComfyUI), or a whole checkpoint's
/// `first_stage_model.*`. Anything else is a clear error.
pub(crate) fn open_vae_file(path: &Path, cfg: &VaeConfig) -> Result<Arc<dyn BaseWeights>> {
    let files = [PathBuf::from(path)];
    let file = crate::weights::mmap_safetensors(&files)?;
    let has = |prefix: &str| file.tensors().iter().any(|(k, _)| k.starts_with(prefix));
    if has("decoder.up_blocks.") && has("encoder.down_blocks.") {
        return Ok(Arc::new(file));
    }
    let vae_root = if has("decoder.up.") && has("encoder.down.") {
        ""
    } else if has("first_stage_model.decoder.up.") {
        VAE
    } else {
        return Err(wrong(
            path,
            "it is not an SDXL VAE file: expected diffusers (`decoder.up_blocks.*`) or original \
             (`decoder.up.*`) VAE weight names",
        ));
    };
    Ok(Arc::new(SgmPart {
        file: Arc::new(file),
        part: Part::Vae,
        prefixes: vae_prefixes(cfg),
        vae_root,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SdxlConfigs;

    #[test]
    fn sdxl_base_unet_names_follow_the_published_layout() {
        let configs = SdxlConfigs::sdxl_base("unused").unwrap();
        let n = |name: &str| unet_sgm_name(&configs.unet, name).unwrap();
        // Spot checks against sd_xl_base_1.0.safetensors key names.
        assert_eq!(
            n("down_blocks.1.attentions.0.proj_in.weight"),
            "input_blocks.4.1.proj_in.weight"
        );
        assert_eq!(
            n("down_blocks.0.downsamplers.0.conv.weight"),
            "input_blocks.3.0.op.weight"
        );
        assert_eq!(
            n("down_blocks.2.resnets.1.conv1.bias"),
            "input_blocks.8.0.in_layers.2.bias"
        );
        assert_eq!(
            n("mid_block.resnets.1.time_emb_proj.weight"),
            "middle_block.2.emb_layers.1.weight"
        );
        assert_eq!(
            n("up_blocks.0.upsamplers.0.conv.weight"),
            "output_blocks.2.2.conv.weight"
        );
        assert_eq!(
            n("up_blocks.1.upsamplers.0.conv.weight"),
            "output_blocks.5.2.conv.weight"
        );
        assert_eq!(
            n("up_blocks.2.resnets.2.conv_shortcut.weight"),
            "output_blocks.8.0.skip_connection.weight"
        );
        assert_eq!(n("add_embedding.linear_2.bias"), "label_emb.0.2.bias");
    }
}
