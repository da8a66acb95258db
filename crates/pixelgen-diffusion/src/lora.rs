//! LoRA files in the kohya/A1111 and diffusers/PEFT layouts: parsing, matching to a model's own
//! weight names, and merging `W += strength * alpha / rank * up @ down` when weights are loaded.
//!
//! A [`Lora`] is parsed once from its file (factors kept on the host in f32). Applying LoRAs is a
//! plan over the base model's weight names ([`TargetIndex`], built from the checkpoint's own
//! keys, not from hand-written renames): each LoRA layer is matched to one base weight, its
//! shapes checked, and the model is then built through a [`candle_nn::VarBuilder`] backend that
//! adds the low-rank products to the weights they target as each one is loaded (see
//! [`crate::SdxlWeights`]). The base stays memory-mapped and untouched, so changing LoRAs or
//! strengths builds the models again from the same mapping without opening or parsing a file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use crate::error::{DiffusionError, Result};

/// The SDXL network a LoRA layer modifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraComponent {
    /// The UNet (strength: [`ScaledLora::unet_strength`]).
    Unet,
    /// The first text encoder, CLIP ViT-L (strength: [`ScaledLora::text_strength`]).
    TextEncoder,
    /// The second text encoder, OpenCLIP bigG (strength: [`ScaledLora::text_strength`]).
    TextEncoder2,
}

impl LoraComponent {
    /// The component's folder name in a diffusers SDXL folder.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unet => "unet",
            Self::TextEncoder => "text_encoder",
            Self::TextEncoder2 => "text_encoder_2",
        }
    }
}

/// How a LoRA file names its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraLayout {
    /// kohya-ss / A1111: `lora_unet_*`, `lora_te1_*`, `lora_te2_*` with `.lora_down.weight`,
    /// `.lora_up.weight` and `.alpha`; module names with underscores for dots.
    Kohya,
    /// diffusers / PEFT: `unet.<module>.lora_A.weight` / `.lora_B.weight` (or the older
    /// `.lora.down.weight` / `.lora.up.weight`), `text_encoder{,_2}.<module>...`; alpha from the
    /// `lora_adapter_metadata` header entry.
    Diffusers,
}

/// What a LoRA's safetensors header says about it (kohya `ss_*`, Stability `modelspec.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoraMetadata {
    /// `modelspec.title` or `ss_output_name`.
    pub title: Option<String>,
    /// Words the LoRA was trained to respond to (`modelspec.trigger_phrase`, comma separated).
    pub trigger_words: Vec<String>,
    /// Training caption tags with their counts (kohya `ss_tag_frequency`), most frequent first.
    pub tags: Vec<(String, u64)>,
    /// The base model it was trained for (`modelspec.architecture`, `ss_base_model_version`).
    pub base_model: Option<String>,
    /// The whole header metadata.
    pub raw: BTreeMap<String, String>,
}

impl LoraMetadata {
    fn from_raw(raw: BTreeMap<String, String>) -> Self {
        let get = |k: &str| raw.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let trigger_words = get("modelspec.trigger_phrase")
            .map(|p| {
                p.split(',')
                    .map(|w| w.trim().to_string())
                    .filter(|w| !w.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        if let Some(json) = get("ss_tag_frequency")
            && let Ok(sets) =
                serde_json::from_str::<BTreeMap<String, BTreeMap<String, serde_json::Value>>>(&json)
        {
            for tags in sets.into_values() {
                for (tag, n) in tags {
                    *counts.entry(tag.trim().to_string()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
        let mut tags: Vec<(String, u64)> = counts.into_iter().collect();
        tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self {
            title: get("modelspec.title").or_else(|| get("ss_output_name")),
            trigger_words,
            tags,
            base_model: get("modelspec.architecture").or_else(|| get("ss_base_model_version")),
            raw,
        }
    }
}

/// How a layer forms its weight update from its factors (f32, on the host).
#[derive(Debug, Clone)]
pub enum LoraUpdate {
    /// LoRA / LoCon: `up @ down`, `down` `[rank, in(, kh, kw)]`, `up` `[out, rank(, 1, 1)]`.
    LowRank {
        /// `[rank, in]` or `[rank, in, kh, kw]`.
        down: Tensor,
        /// `[out, rank]` or `[out, rank, 1, 1]`.
        up: Tensor,
    },
    /// LyCORIS LoHa: `(w1_a @ w1_b) ⊙ (w2_a @ w2_b)`, `w*_a` `[out, rank]`, `w*_b`
    /// `[rank, in(·kh·kw)]`.
    Hadamard {
        /// First pair, left factor.
        w1_a: Tensor,
        /// First pair, right factor.
        w1_b: Tensor,
        /// Second pair, left factor.
        w2_a: Tensor,
        /// Second pair, right factor.
        w2_b: Tensor,
    },
    /// LyCORIS LoKr: `kron(w1, w2)`; `w1` is `[o1, i1]`, `w2` `[o2, i2]` or a conv kernel
    /// `[o2, i2, kh, kw]`, with `o1·o2 = out` and `i1·i2 = in`.
    Kronecker {
        /// The small left factor.
        w1: KronFactor,
        /// The right factor.
        w2: KronFactor,
    },
}

/// One factor of a LoKr layer.
#[derive(Debug, Clone)]
pub enum KronFactor {
    /// Stored whole.
    Full(Tensor),
    /// Stored as `a @ b` (`a` `[rows, rank]`, `b` `[rank, cols]`).
    Product(Tensor, Tensor),
}

/// One layer of a LoRA: the factors of the update of one weight of the base model.
#[derive(Debug, Clone)]
pub struct LoraLayer {
    /// The network it modifies.
    pub component: LoraComponent,
    /// The module as the file names it, without the component prefix and without the text
    /// encoders' `text_model` prefix: dotted for diffusers (`down_blocks.1.attentions.0.proj_in`),
    /// with underscores for kohya (`down_blocks_1_attentions_0_proj_in`).
    pub module: String,
    /// The factors and how they combine.
    pub update: LoraUpdate,
    /// `alpha / rank` (1 when the file gives no alpha; see [`crate::lycoris`] for LoKr).
    pub scale: f64,
    /// DoRA's magnitude `m`, one value per output channel (PEFT's `lora_magnitude_vector`):
    /// the weight becomes `m / ||W + s·dW||_row ⊙ (W + s·dW)` instead of `W + s·dW`.
    pub magnitude: Option<Tensor>,
}

impl LoraLayer {
    /// The layer's rank: rows of `down` (LoRA), of `w1_b` (LoHa), of the product factor's `b`
    /// (LoKr; 0 when both factors are full).
    pub fn rank(&self) -> usize {
        let rows = |t: &Tensor| t.dims().first().copied().unwrap_or(0);
        match &self.update {
            LoraUpdate::LowRank { down, .. } => rows(down),
            LoraUpdate::Hadamard { w1_b, .. } => rows(w1_b),
            LoraUpdate::Kronecker { w1, w2 } => match (w1, w2) {
                (_, KronFactor::Product(_, b)) | (KronFactor::Product(_, b), _) => rows(b),
                _ => 0,
            },
        }
    }
}

/// A parsed LoRA file.
#[derive(Debug, Clone)]
pub struct Lora {
    path: PathBuf,
    layout: LoraLayout,
    metadata: LoraMetadata,
    layers: Vec<LoraLayer>,
    ignored: Vec<String>,
}

fn lora_err(path: &Path, message: impl Into<String>) -> DiffusionError {
    DiffusionError::Lora {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Lora {
    /// Reads a LoRA `.safetensors` file (either layout).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| DiffusionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses a LoRA from the bytes of a safetensors file; `path` names it in messages.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Self> {
        let path = path.as_ref();
        if bytes.is_empty() {
            return Err(lora_err(
                path,
                "the file is empty: download it again (a LoRA is a .safetensors file)",
            ));
        }
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
            lora_err(
                path,
                format!(
                    "not a readable safetensors file ({e}): is it truncated or a .ckpt/.pt file?"
                ),
            )
        })?;
        let raw: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
            lora_err(
                path,
                format!("cannot read its tensors ({e}): is the file truncated?"),
            )
        })?;
        let kohya = tensors
            .keys()
            .any(|k| k.starts_with("lora_unet_") || k.starts_with("lora_te"));
        let (layout, parsed) = if kohya {
            (LoraLayout::Kohya, parse_kohya(path, &tensors)?)
        } else {
            let adapter = raw
                .get("lora_adapter_metadata")
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
            (
                LoraLayout::Diffusers,
                parse_diffusers(path, &tensors, adapter.as_ref())?,
            )
        };
        let (layers, ignored) = parsed;
        if layers.is_empty() {
            let mut sample: Vec<&String> = tensors.keys().collect();
            sample.sort();
            sample.truncate(3);
            return Err(lora_err(
                path,
                format!(
                    "no LoRA layers found among its {} tensors (e.g. {sample:?}): expected kohya \
                     (`lora_unet_*.lora_down.weight`) or diffusers/PEFT \
                     (`unet.*.lora_A.weight`) keys, or LyCORIS LoHa/LoKr (`hada_w1_a`, \
                     `lokr_w1`) in kohya names",
                    tensors.len()
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            layout,
            metadata: LoraMetadata::from_raw(raw),
            layers,
            ignored,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's key layout.
    pub fn layout(&self) -> LoraLayout {
        self.layout
    }

    /// Header metadata (trigger words, base model, ...).
    pub fn metadata(&self) -> &LoraMetadata {
        &self.metadata
    }

    /// The layers, in file order.
    pub fn layers(&self) -> &[LoraLayer] {
        &self.layers
    }

    /// Tensors of the file that are not factors this crate applies (e.g. kohya `dora_scale`,
    /// Tucker cores of LyCORIS convolutions).
    pub fn ignored_keys(&self) -> &[String] {
        &self.ignored
    }
}

type Parsed = (Vec<LoraLayer>, Vec<String>);

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    Ok(v.first().copied().unwrap_or(f64::NAN))
}

pub(crate) fn factor(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?)
}

pub(crate) fn rank_of(path: &Path, key: &str, down: &Tensor) -> Result<usize> {
    match down.dims().first() {
        Some(&r) if r > 0 && down.rank() >= 2 => Ok(r),
        _ => Err(lora_err(
            path,
            format!(
                "`{key}` has shape {:?}, expected [rank, in(, kh, kw)]",
                down.dims()
            ),
        )),
    }
}

fn parse_kohya(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<Parsed> {
    const DOWN: &str = ".lora_down.weight";
    let mut used = std::collections::HashSet::new();
    let mut layers = Vec::new();
    // Layer prefixes, each once: LoRA/LoCon (`lora_down`) or LyCORIS LoHa/LoKr.
    let mut prefixes: Vec<&str> = tensors
        .keys()
        .filter_map(|k| {
            std::iter::once(DOWN)
                .chain(crate::lycoris::FIRST_KEYS)
                .find_map(|s| k.strip_suffix(s))
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    for prefix in prefixes {
        let (component, module) = if let Some(m) = prefix.strip_prefix("lora_unet_") {
            (LoraComponent::Unet, m)
        } else if let Some(m) = prefix.strip_prefix("lora_te2_") {
            (LoraComponent::TextEncoder2, m)
        } else if let Some(m) = prefix
            .strip_prefix("lora_te1_")
            .or_else(|| prefix.strip_prefix("lora_te_"))
        {
            (LoraComponent::TextEncoder, m)
        } else {
            continue;
        };
        let module = module.strip_prefix("text_model_").unwrap_or(module);
        let key = format!("{prefix}{DOWN}");
        let alpha_key = format!("{prefix}.alpha");
        let Some(down) = tensors.get(&key) else {
            if let Some(p) = crate::lycoris::parse(path, tensors, prefix)? {
                used.extend(p.used);
                layers.push(LoraLayer {
                    component,
                    module: module.to_string(),
                    update: p.update,
                    scale: p.scale,
                    magnitude: None,
                });
            }
            continue;
        };
        let up_key = format!("{prefix}.lora_up.weight");
        let Some(up) = tensors.get(&up_key) else {
            return Err(lora_err(path, format!("`{key}` has no `{up_key}`")));
        };
        let rank = rank_of(path, &key, down)?;
        let scale = match tensors.get(&alpha_key) {
            Some(a) => scalar(a)? / rank as f64,
            None => 1.0,
        };
        used.extend([key, up_key, alpha_key]);
        layers.push(LoraLayer {
            component,
            module: module.to_string(),
            update: LoraUpdate::LowRank {
                down: factor(down)?,
                up: factor(up)?,
            },
            scale,
            magnitude: None,
        });
    }
    Ok((layers, unused(tensors, &used)))
}

fn unused(
    tensors: &HashMap<String, Tensor>,
    used: &std::collections::HashSet<String>,
) -> Vec<String> {
    let mut rest: Vec<String> = tensors
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    rest.sort();
    rest
}

/// `(down suffix, up suffix)` of the diffusers-side spellings.
const DIFFUSERS_PAIRS: [(&str, &str); 3] = [
    (".lora_A.weight", ".lora_B.weight"),
    (".lora.down.weight", ".lora.up.weight"),
    (
        ".lora_linear_layer.down.weight",
        ".lora_linear_layer.up.weight",
    ),
];

fn parse_diffusers(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    adapter: Option<&serde_json::Value>,
) -> Result<Parsed> {
    let mut used = std::collections::HashSet::new();
    let mut layers = Vec::new();
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    for key in keys {
        let Some((prefix, up_suffix)) = DIFFUSERS_PAIRS
            .iter()
            .find_map(|(d, u)| key.strip_suffix(d).map(|p| (p, *u)))
        else {
            continue;
        };
        let (component, module) = if let Some(m) = prefix.strip_prefix("unet.") {
            (LoraComponent::Unet, m)
        } else if let Some(m) = prefix.strip_prefix("text_encoder_2.") {
            (LoraComponent::TextEncoder2, m)
        } else if let Some(m) = prefix.strip_prefix("text_encoder.") {
            (LoraComponent::TextEncoder, m)
        } else {
            continue;
        };
        let module = module.strip_prefix("text_model.").unwrap_or(module);
        let up_key = format!("{prefix}{up_suffix}");
        let alpha_key = format!("{prefix}.alpha");
        let (Some(down), Some(up)) = (tensors.get(key), tensors.get(&up_key)) else {
            return Err(lora_err(path, format!("`{key}` has no `{up_key}`")));
        };
        let rank = rank_of(path, key, down)?;
        let alpha = match tensors.get(&alpha_key) {
            Some(a) => Some(scalar(a)?),
            None => adapter_alpha(adapter, component, module),
        };
        let rslora = adapter
            .and_then(|a| a.get(format!("{}.use_rslora", component.name())))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let scale = match alpha {
            Some(a) if rslora => a / (rank as f64).sqrt(),
            Some(a) => a / rank as f64,
            None => 1.0,
        };
        // DoRA (PEFT `use_dora`): the magnitude vector of the layer.
        let magnitude_key = [".lora_magnitude_vector", ".lora_magnitude_vector.weight"]
            .map(|s| format!("{prefix}{s}"))
            .into_iter()
            .find(|k| tensors.contains_key(k));
        let magnitude = match &magnitude_key {
            Some(k) => Some(factor(&tensors[k])?),
            None => None,
        };
        used.extend([key.clone(), up_key, alpha_key]);
        used.extend(magnitude_key);
        layers.push(LoraLayer {
            component,
            module: module.to_string(),
            update: LoraUpdate::LowRank {
                down: factor(down)?,
                up: factor(up)?,
            },
            scale,
            magnitude,
        });
    }
    Ok((layers, unused(tensors, &used)))
}

/// Alpha from diffusers' `lora_adapter_metadata` (`<component>.lora_alpha`, overridden per
/// module by `<component>.alpha_pattern`, whose keys PEFT matches as module-name suffixes).
fn adapter_alpha(
    adapter: Option<&serde_json::Value>,
    component: LoraComponent,
    module: &str,
) -> Option<f64> {
    let adapter = adapter?;
    let comp = component.name();
    if let Some(pattern) = adapter
        .get(format!("{comp}.alpha_pattern"))
        .and_then(|p| p.as_object())
    {
        for (suffix, value) in pattern {
            let suffix = suffix.strip_prefix("text_model.").unwrap_or(suffix);
            if (module == suffix || module.ends_with(&format!(".{suffix}")))
                && let Some(a) = value.as_f64()
            {
                return Some(a);
            }
        }
    }
    adapter
        .get(format!("{comp}.lora_alpha"))
        .and_then(serde_json::Value::as_f64)
}

/// A LoRA with the strengths it is applied at.
#[derive(Debug, Clone)]
pub struct ScaledLora {
    /// The parsed file (shared: the same LoRA can be applied again at other strengths).
    pub lora: Arc<Lora>,
    /// Multiplier of its UNet layers (1 = as trained; negative values invert it).
    pub unet_strength: f64,
    /// Multiplier of its text-encoder layers (both encoders).
    pub text_strength: f64,
}

impl ScaledLora {
    /// `lora` at `strength` for the UNet and the text encoders alike.
    pub fn new(lora: Arc<Lora>, strength: f64) -> Self {
        Self {
            lora,
            unet_strength: strength,
            text_strength: strength,
        }
    }
}

/// The names and shapes of one network's weights, indexed by module name both ways a LoRA may
/// spell it (dotted, and kohya's underscores).
#[derive(Debug, Clone, Default)]
pub struct TargetIndex {
    dotted: HashMap<String, (String, Vec<usize>)>,
    underscored: HashMap<String, String>,
}

impl TargetIndex {
    /// Index the weights `(name, shape)` of one network's checkpoint: every `<module>.weight`
    /// (the text encoders' `text_model.` prefix dropped) becomes a LoRA target.
    pub fn new<'a>(weights: impl IntoIterator<Item = (&'a str, Vec<usize>)>) -> Self {
        let mut index = Self::default();
        for (name, shape) in weights {
            let Some(module) = name.strip_suffix(".weight") else {
                continue;
            };
            let module = module.strip_prefix("text_model.").unwrap_or(module);
            index
                .underscored
                .insert(module.replace('.', "_"), module.to_string());
            index
                .dotted
                .insert(module.to_string(), (name.to_string(), shape));
        }
        index
    }

    /// Index the weights of a memory-mapped checkpoint.
    pub fn from_mmap(st: &MmapedSafetensors) -> Self {
        let list = st.tensors();
        Self::new(list.iter().map(|(n, v)| (n.as_str(), v.shape().to_vec())))
    }

    /// Also accept kohya names spelled in another layout: `alias` gives, for a module name of
    /// the index, its name there (e.g. the SGM `input_blocks.4.1.proj_in` of the diffusers
    /// `down_blocks.1.attentions.0.proj_in`).
    pub fn with_aliases(mut self, alias: impl Fn(&str) -> Option<String>) -> Self {
        let extra: Vec<(String, String)> = self
            .dotted
            .keys()
            .filter_map(|m| alias(m).map(|a| (a.replace('.', "_"), m.clone())))
            .collect();
        for (a, m) in extra {
            self.underscored.entry(a).or_insert(m);
        }
        self
    }

    fn lookup(&self, layout: LoraLayout, module: &str) -> Option<&(String, Vec<usize>)> {
        match layout {
            LoraLayout::Diffusers => self.dotted.get(module),
            LoraLayout::Kohya => self
                .underscored
                .get(module)
                .and_then(|m| self.dotted.get(m)),
        }
    }
}

/// What applying LoRAs matched, per LoRA.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoraReport {
    /// One entry per applied LoRA, in order.
    pub loras: Vec<LoraMatch>,
}

/// How one LoRA's layers matched the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoraMatch {
    /// The LoRA's file.
    pub path: PathBuf,
    /// Layers merged into the model.
    pub matched: usize,
    /// Layers that match no weight of the model (`component: module`): not applied.
    pub unmatched: Vec<String>,
    /// Tensors of the file that are not factors this crate applies (e.g. kohya `dora_scale`):
    /// not applied.
    pub ignored: Vec<String>,
}

/// One weight update, its factors reshaped to matrices (f32, on the host), times `factor`.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    form: DeltaForm,
    factor: f64,
    /// DoRA's magnitude, `[out]`.
    magnitude: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum DeltaForm {
    /// `up [out, r] @ down [r, rest]`.
    LowRank { up: Tensor, down: Tensor },
    /// `(a1 @ b1) ⊙ (a2 @ b2)`, all 2-D.
    Hadamard([Tensor; 4]),
    /// `kron(w1, w2)` with `w1` `o1 x i1` and `w2` `o2 x (i2·k)`.
    Kronecker {
        w1: KronFactor,
        w2: KronFactor,
        dims1: (usize, usize),
        dims2: (usize, usize, usize),
    },
}

impl Delta {
    /// The update as a `[out, rest]` matrix on `dev`, without `factor`.
    fn matrix(&self, dev: &Device) -> candle_core::Result<Tensor> {
        match &self.form {
            DeltaForm::LowRank { up, down } => up.to_device(dev)?.matmul(&down.to_device(dev)?),
            DeltaForm::Hadamard([a1, b1, a2, b2]) => {
                let p1 = a1.to_device(dev)?.matmul(&b1.to_device(dev)?)?;
                let p2 = a2.to_device(dev)?.matmul(&b2.to_device(dev)?)?;
                p1 * p2
            }
            DeltaForm::Kronecker {
                w1,
                w2,
                dims1,
                dims2,
            } => {
                let m1 = crate::lycoris::kron_factor(w1, dims1.0, dev)?;
                let m2 = crate::lycoris::kron_factor(w2, dims2.0, dev)?;
                crate::lycoris::kron_matrix(&m1, &m2, *dims1, *dims2)
            }
        }
    }
}

/// The updates for each base weight name, per network.
pub(crate) type MergePlan = HashMap<LoraComponent, HashMap<String, Vec<Delta>>>;

/// Matches every layer of `loras` against the networks' weights and checks its shapes.
///
/// Errors when a LoRA matches no weight at all or a layer's shapes do not fit its weight (both
/// mean the LoRA was made for another model); layers that match nothing otherwise are reported.
pub(crate) fn plan(
    loras: &[ScaledLora],
    targets: &HashMap<LoraComponent, TargetIndex>,
) -> Result<(MergePlan, LoraReport)> {
    let mut merge: MergePlan = HashMap::new();
    let mut report = LoraReport::default();
    for scaled in loras {
        let lora = &scaled.lora;
        let mut entry = LoraMatch {
            path: lora.path.clone(),
            ignored: lora.ignored.clone(),
            ..Default::default()
        };
        let mut sgm = false;
        for layer in &lora.layers {
            let hit = targets
                .get(&layer.component)
                .and_then(|t| t.lookup(lora.layout, &layer.module));
            let Some((name, shape)) = hit else {
                sgm |= layer.component == LoraComponent::Unet
                    && ["input_blocks", "middle_block", "output_blocks"]
                        .iter()
                        .any(|p| layer.module.starts_with(p));
                entry
                    .unmatched
                    .push(format!("{}: {}", layer.component.name(), layer.module));
                continue;
            };
            let delta = fit(lora, layer, name, shape)?;
            let strength = match layer.component {
                LoraComponent::Unet => scaled.unet_strength,
                _ => scaled.text_strength,
            };
            entry.matched += 1;
            if strength == 0.0 {
                continue;
            }
            merge
                .entry(layer.component)
                .or_default()
                .entry(name.clone())
                .or_default()
                .push(Delta {
                    factor: strength * layer.scale,
                    ..delta
                });
        }
        if sgm {
            return Err(lora_err(
                &lora.path,
                "its UNet layers use the original SGM names (`lora_unet_input_blocks_*`) but do \
                 not fit this UNet's block layout: it was made for another model",
            ));
        }
        if entry.matched == 0 {
            let base = lora
                .metadata
                .base_model
                .as_deref()
                .map(|b| format!(" (its header says base model `{b}`)"))
                .unwrap_or_default();
            return Err(lora_err(
                &lora.path,
                format!(
                    "none of its {} layers matches a weight of this SDXL model{base}: this LoRA \
                     targets another architecture (e.g. SD1.5, SD2 or Flux); use an SDXL LoRA",
                    lora.layers.len()
                ),
            ));
        }
        report.loras.push(entry);
    }
    Ok((merge, report))
}

/// Checks that `layer`'s factors fit the weight `name` of shape `shape`, as matrices.
fn fit(lora: &Lora, layer: &LoraLayer, name: &str, shape: &[usize]) -> Result<Delta> {
    let out = shape.first().copied().unwrap_or(0);
    let inp = shape.get(1).copied().unwrap_or(0);
    let rest: usize = shape.iter().skip(1).product();
    let dims = |t: &Tensor| t.dims().to_vec();
    let rows = |t: &Tensor| t.dims().first().copied().unwrap_or(0);
    // `t` is a matrix `[r, c]` (trailing 1s allowed).
    let is_matrix = |t: &Tensor, r: usize, c: usize| {
        let d = t.dims();
        d.len() >= 2 && d[0] == r && d[1..].iter().product::<usize>() == c
    };
    let form = match &layer.update {
        LoraUpdate::LowRank { down, up } => {
            let rank = rows(down);
            let up_ok = up.dims().len() >= 2
                && up.dims()[0] == out
                && up.dims()[1] == rank
                && up.dims()[2..].iter().all(|&d| d == 1);
            (up_ok && down.elem_count() == rank * rest && shape.len() >= 2).then(|| {
                Ok::<_, DiffusionError>(DeltaForm::LowRank {
                    up: up.reshape((out, rank))?,
                    down: down.reshape((rank, rest))?,
                })
            })
        }
        LoraUpdate::Hadamard {
            w1_a,
            w1_b,
            w2_a,
            w2_b,
        } => {
            let (r1, r2) = (rows(w1_b), rows(w2_b));
            let ok = is_matrix(w1_a, out, r1)
                && is_matrix(w2_a, out, r2)
                && is_matrix(w1_b, r1, rest)
                && is_matrix(w2_b, r2, rest);
            ok.then(|| {
                Ok(DeltaForm::Hadamard([
                    w1_a.reshape((out, r1))?,
                    w1_b.reshape((r1, rest))?,
                    w2_a.reshape((out, r2))?,
                    w2_b.reshape((r2, rest))?,
                ]))
            })
        }
        LoraUpdate::Kronecker { w1, w2 } => kron_dims(w1, w2, out, inp, rest).map(|(d1, d2)| {
            Ok(DeltaForm::Kronecker {
                w1: w1.clone(),
                w2: w2.clone(),
                dims1: d1,
                dims2: d2,
            })
        }),
    };
    let Some(form) = form else {
        let base = lora
            .metadata
            .base_model
            .as_deref()
            .map(|b| format!(", header says base model `{b}`"))
            .unwrap_or_default();
        let factors: Vec<Vec<usize>> = match &layer.update {
            LoraUpdate::LowRank { down, up } => vec![dims(down), dims(up)],
            LoraUpdate::Hadamard {
                w1_a,
                w1_b,
                w2_a,
                w2_b,
            } => vec![dims(w1_a), dims(w1_b), dims(w2_a), dims(w2_b)],
            LoraUpdate::Kronecker { w1, w2 } => [w1, w2]
                .iter()
                .flat_map(|f| match f {
                    KronFactor::Full(w) => vec![dims(w)],
                    KronFactor::Product(a, b) => vec![dims(a), dims(b)],
                })
                .collect(),
        };
        return Err(lora_err(
            &lora.path,
            format!(
                "layer `{}` (factors {factors:?}) does not fit the model's weight `{}.{name}` \
                 {shape:?}: the LoRA was made for another model{base}",
                layer.module,
                layer.component.name()
            ),
        ));
    };
    let magnitude = match &layer.magnitude {
        Some(m) if m.elem_count() == out => Some(m.reshape(out)?),
        Some(m) => {
            return Err(lora_err(
                &lora.path,
                format!(
                    "layer `{}` has a DoRA magnitude of shape {:?}, expected {out} values (one \
                     per output channel of `{}.{name}`)",
                    layer.module,
                    m.dims(),
                    layer.component.name()
                ),
            ));
        }
        None => None,
    };
    Ok(Delta {
        form: form?,
        factor: 1.0,
        magnitude,
    })
}

/// `((o1, i1), (o2, i2, k))` of a LoKr layer on a weight `[out, in(, kh, kw)]` (`rest` =
/// in·kh·kw), when its factors fit.
type KronDims = ((usize, usize), (usize, usize, usize));

fn kron_dims(
    w1: &KronFactor,
    w2: &KronFactor,
    out: usize,
    inp: usize,
    rest: usize,
) -> Option<KronDims> {
    // (rows, cols) of a factor as a matrix, and for a full one its trailing kernel size.
    let shape = |f: &KronFactor| -> Option<(usize, usize, Option<usize>)> {
        match f {
            KronFactor::Full(w) => {
                let d = w.dims();
                (d.len() >= 2).then(|| (d[0], d[1], Some(d[2..].iter().product())))
            }
            KronFactor::Product(a, b) => {
                let (da, db) = (a.dims(), b.dims());
                (da.len() == 2 && db.len() >= 2 && da[1] == db[0])
                    .then(|| (da[0], db[1..].iter().product(), None))
            }
        }
    };
    let (o1, i1, k1) = shape(w1)?;
    let (o2, c2, k2) = shape(w2)?;
    if o1 == 0 || i1 == 0 || inp == 0 || k1.is_some_and(|k| k != 1) {
        return None;
    }
    let k = rest / inp;
    let i2 = inp / i1;
    let fits = o1 * o2 == out
        && i1 * i2 == inp
        && c2 * k2.unwrap_or(1) == i2 * k
        && k2.is_none_or(|k2| k2 == k || k2 == 1 && c2 == i2 * k);
    fits.then_some(((o1, i1), (o2, i2, k)))
}

/// Where a network's base weights come from, by the names our modules ask for (diffusers').
pub(crate) trait BaseWeights: Send + Sync {
    /// The tensor `name` on `dev`, in its stored dtype.
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor>;
    /// Whether `name` exists.
    fn contains(&self, name: &str) -> bool;
}

impl BaseWeights for MmapedSafetensors {
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        MmapedSafetensors::load(self, name, dev)
    }

    fn contains(&self, name: &str) -> bool {
        self.get(name).is_ok()
    }
}

/// A weight source that adds planned LoRA updates to the base weights as they are loaded.
/// The names it merged into are recorded in `applied`.
pub(crate) struct MergedBackend {
    base: Arc<dyn BaseWeights>,
    deltas: HashMap<String, Vec<Delta>>,
    applied: Arc<Mutex<HashSet<String>>>,
}

impl MergedBackend {
    pub(crate) fn new(
        base: Arc<dyn BaseWeights>,
        deltas: HashMap<String, Vec<Delta>>,
        applied: Arc<Mutex<HashSet<String>>>,
    ) -> Self {
        Self {
            base,
            deltas,
            applied,
        }
    }
}

impl SimpleBackend for MergedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let base = self.base.load(name, dev)?;
        let Some(deltas) = self.deltas.get(name) else {
            return base.to_dtype(dtype);
        };
        // Merge in f32 whatever the model's dtype, then convert once.
        let shape = base.shape().clone();
        let base = base.to_dtype(DType::F32)?;
        let mut w = base.clone();
        for d in deltas {
            let product = d.matrix(dev)?.reshape(&shape)?.affine(d.factor, 0.0)?;
            w = match &d.magnitude {
                None => (w + product)?,
                // DoRA, as PEFT merges it: the norm of the base weight plus this update, per
                // output channel, rescaled to the magnitude.
                Some(m) => {
                    let out = shape.dims().first().copied().unwrap_or(1);
                    let norm = (&base + &product)?
                        .reshape((out, ()))?
                        .sqr()?
                        .sum_keepdim(1)?
                        .sqrt()?;
                    let scale = m.to_device(dev)?.reshape((out, 1))?.broadcast_div(&norm)?;
                    (w + product)?
                        .reshape((out, ()))?
                        .broadcast_mul(&scale)?
                        .reshape(&shape)?
                }
            };
        }
        if let Ok(mut applied) = self.applied.lock() {
            applied.insert(name.to_string());
        }
        w.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.base.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(list: &[(&str, Vec<usize>, f32)]) -> HashMap<String, Tensor> {
        list.iter()
            .map(|(k, shape, v)| {
                let n: usize = shape.iter().product();
                let data: Vec<f32> = (0..n).map(|i| v + i as f32 * 0.01).collect();
                (
                    k.to_string(),
                    Tensor::from_vec(data, shape.as_slice(), &Device::Cpu).unwrap(),
                )
            })
            .collect()
    }

    /// A safetensors file (f32 tensors) written by hand: header length, JSON header, data.
    fn bytes(t: &HashMap<String, Tensor>, meta: Option<HashMap<String, String>>) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if let Some(m) = meta {
            header.insert("__metadata__".into(), serde_json::to_value(m).unwrap());
        }
        let mut data: Vec<u8> = Vec::new();
        let mut names: Vec<&String> = t.keys().collect();
        names.sort();
        for name in names {
            let v: Vec<f32> = t[name].flatten_all().unwrap().to_vec1().unwrap();
            let start = data.len();
            data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": "F32", "shape": t[name].dims(), "data_offsets": [start, data.len()]}),
            );
        }
        let json = serde_json::to_vec(&header).unwrap();
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        out.extend(data);
        out
    }

    #[test]
    fn kohya_alpha_is_per_layer_and_text_model_prefix_is_dropped() {
        let t = tensors(&[
            ("lora_unet_a_b.lora_down.weight", vec![2, 3], 0.1),
            ("lora_unet_a_b.lora_up.weight", vec![5, 2], 0.2),
            ("lora_unet_a_b.alpha", vec![], 1.0),
            ("lora_te1_text_model_x_y.lora_down.weight", vec![4, 3], 0.1),
            ("lora_te1_text_model_x_y.lora_up.weight", vec![3, 4], 0.1),
            ("lora_te1_text_model_x_y.alpha", vec![], 8.0),
            ("lora_unet_a_b.dora_scale", vec![5], 1.0),
        ]);
        let lora = Lora::from_bytes("k", &bytes(&t, None)).unwrap();
        assert_eq!(lora.layout(), LoraLayout::Kohya);
        let layers = lora.layers();
        assert_eq!(layers.len(), 2);
        let unet = layers
            .iter()
            .find(|l| l.component == LoraComponent::Unet)
            .unwrap();
        assert_eq!(unet.module, "a_b");
        assert!((unet.scale - 0.5).abs() < 1e-12);
        let te = layers
            .iter()
            .find(|l| l.component == LoraComponent::TextEncoder)
            .unwrap();
        assert_eq!(te.module, "x_y");
        assert!((te.scale - 2.0).abs() < 1e-12);
        assert_eq!(lora.ignored_keys(), ["lora_unet_a_b.dora_scale"]);
    }

    #[test]
    fn peft_alpha_comes_from_adapter_metadata_with_patterns() {
        let t = tensors(&[
            ("unet.m.to_q.lora_A.weight", vec![4, 3], 0.1),
            ("unet.m.to_q.lora_B.weight", vec![3, 4], 0.1),
            ("unet.m.to_k.lora_A.weight", vec![4, 3], 0.1),
            ("unet.m.to_k.lora_B.weight", vec![3, 4], 0.1),
        ]);
        let meta = HashMap::from([(
            "lora_adapter_metadata".to_string(),
            r#"{"unet.lora_alpha": 8, "unet.r": 4, "unet.alpha_pattern": {"to_k": 2}}"#.to_string(),
        )]);
        let lora = Lora::from_bytes("p", &bytes(&t, Some(meta))).unwrap();
        assert_eq!(lora.layout(), LoraLayout::Diffusers);
        let scale = |m: &str| lora.layers().iter().find(|l| l.module == m).unwrap().scale;
        assert!((scale("m.to_q") - 2.0).abs() < 1e-12);
        assert!((scale("m.to_k") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn metadata_gives_trigger_words_tags_and_base_model() {
        let raw = BTreeMap::from([
            (
                "modelspec.trigger_phrase".to_string(),
                " pixelart ,sprite,".to_string(),
            ),
            (
                "ss_tag_frequency".to_string(),
                r#"{"a": {"x": 1, "y": 5}, "b": {"x": 7}}"#.to_string(),
            ),
            (
                "ss_base_model_version".to_string(),
                "sdxl_base_v1-0".to_string(),
            ),
        ]);
        let m = LoraMetadata::from_raw(raw);
        assert_eq!(m.trigger_words, ["pixelart", "sprite"]);
        assert_eq!(m.tags, [("x".to_string(), 8), ("y".to_string(), 5)]);
        assert_eq!(m.base_model.as_deref(), Some("sdxl_base_v1-0"));
        assert_eq!(m.title, None);
    }

    #[test]
    fn plan_matches_by_underscored_name_and_rejects_bad_shapes() {
        let t = tensors(&[
            ("lora_unet_blk_0_proj.lora_down.weight", vec![2, 3], 0.1),
            ("lora_unet_blk_0_proj.lora_up.weight", vec![4, 2], 0.1),
            ("lora_unet_nothing.lora_down.weight", vec![2, 3], 0.1),
            ("lora_unet_nothing.lora_up.weight", vec![4, 2], 0.1),
        ]);
        let lora = Arc::new(Lora::from_bytes("k", &bytes(&t, None)).unwrap());
        let ok = HashMap::from([(
            LoraComponent::Unet,
            TargetIndex::new([
                ("blk.0.proj.weight", vec![4, 3]),
                ("blk.0.proj.bias", vec![4]),
            ]),
        )]);
        let (merge, report) = plan(&[ScaledLora::new(lora.clone(), 0.5)], &ok).unwrap();
        assert_eq!(report.loras[0].matched, 1);
        assert_eq!(report.loras[0].unmatched, ["unet: nothing"]);
        assert_eq!(
            merge[&LoraComponent::Unet]["blk.0.proj.weight"][0].factor,
            0.5
        );
        let bad = HashMap::from([(
            LoraComponent::Unet,
            TargetIndex::new([("blk.0.proj.weight", vec![4, 5])]),
        )]);
        let err = plan(&[ScaledLora::new(lora, 1.0)], &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not fit"), "{err}");
    }
}
