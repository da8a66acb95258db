//! SDXL prompt encoding: both tokenizers and text encoders, as diffusers' `encode_prompt`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::clip::ClipTextModel;
use crate::config::SdxlConfigs;
use crate::error::{Result, invalid};
use crate::tokenizer::ClipTokenizer;
use crate::weights::{load_var_builder, weight_files};

/// Text conditioning for one prompt.
#[derive(Debug, Clone)]
pub struct PromptEmbeds {
    /// Penultimate hidden states of both encoders, concatenated: `[1, 77, 768 + 1280]` in SDXL.
    pub embeds: Tensor,
    /// The second encoder's projected pooled output: `[1, 1280]` in SDXL.
    pub pooled: Tensor,
    /// Tokens cut from the prompt by the 77-token limit (largest of the two tokenizers).
    pub truncated: usize,
}

/// SDXL's two CLIP text encoders with their tokenizers.
#[derive(Debug, Clone)]
pub struct SdxlTextEncoders {
    tokenizer: ClipTokenizer,
    tokenizer_2: ClipTokenizer,
    encoder: ClipTextModel,
    encoder_2: ClipTextModel,
    force_zeros_for_empty_prompt: bool,
    device: Device,
}

impl SdxlTextEncoders {
    /// Loads tokenizers and encoders from an SDXL folder. `variant` picks e.g. `model.fp16.safetensors`.
    pub fn load(
        configs: &SdxlConfigs,
        variant: Option<&str>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let dir: &Path = &configs.dir;
        let vb1 = load_var_builder(
            &weight_files(&dir.join("text_encoder"), "model", variant)?,
            dtype,
            device,
        )?;
        let vb2 = load_var_builder(
            &weight_files(&dir.join("text_encoder_2"), "model", variant)?,
            dtype,
            device,
        )?;
        Ok(Self {
            tokenizer: ClipTokenizer::from_folder(dir.join("tokenizer"))?,
            tokenizer_2: ClipTokenizer::from_folder(dir.join("tokenizer_2"))?,
            encoder: ClipTextModel::new(&configs.text_encoder, false, vb1)?,
            encoder_2: ClipTextModel::new(&configs.text_encoder_2, true, vb2)?,
            force_zeros_for_empty_prompt: configs.model_index.force_zeros_for_empty_prompt,
            device: device.clone(),
        })
    }

    /// Assembles the encoders from parts built elsewhere (e.g. with [`crate::RandomWeights`]).
    pub fn from_parts(
        tokenizers: (ClipTokenizer, ClipTokenizer),
        encoders: (ClipTextModel, ClipTextModel),
        force_zeros_for_empty_prompt: bool,
        device: &Device,
    ) -> Self {
        Self {
            tokenizer: tokenizers.0,
            tokenizer_2: tokenizers.1,
            encoder: encoders.0,
            encoder_2: encoders.1,
            force_zeros_for_empty_prompt,
            device: device.clone(),
        }
    }

    /// Encodes `prompt` (and `prompt_2` for the second encoder, defaulting to `prompt`).
    pub fn encode(&self, prompt: &str, prompt_2: Option<&str>) -> Result<PromptEmbeds> {
        let t1 = self.tokenizer.encode(prompt)?;
        let t2 = self.tokenizer_2.encode(prompt_2.unwrap_or(prompt))?;
        let ids1 = Tensor::new(t1.ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let ids2 = Tensor::new(t2.ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let o1 = self.encoder.forward(&ids1)?;
        let o2 = self.encoder_2.forward(&ids2)?;
        let embeds = Tensor::cat(&[o1.hidden_from_end(1)?, o2.hidden_from_end(1)?], 2)?;
        let pooled = o2
            .text_embeds
            .ok_or_else(|| invalid("text_encoder_2", "has no text projection"))?;
        Ok(PromptEmbeds {
            embeds,
            pooled,
            truncated: t1.truncated.max(t2.truncated),
        })
    }

    /// Encodes the prompt and the negative prompt for classifier-free guidance. With no negative
    /// prompt (`None`) and `force_zeros_for_empty_prompt` (SDXL base), the negative conditioning is
    /// all zeros, as in diffusers; `Some("")` encodes the empty string instead.
    pub fn encode_with_negative(
        &self,
        prompt: &str,
        negative: Option<&str>,
    ) -> Result<(PromptEmbeds, PromptEmbeds)> {
        let positive = self.encode(prompt, None)?;
        let negative = match negative {
            None if self.force_zeros_for_empty_prompt => PromptEmbeds {
                embeds: positive.embeds.zeros_like()?,
                pooled: positive.pooled.zeros_like()?,
                truncated: 0,
            },
            other => self.encode(other.unwrap_or(""), None)?,
        };
        Ok((positive, negative))
    }

    /// The first tokenizer (both have the same vocabulary in SDXL; the pad tokens differ).
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// The first text encoder.
    pub fn encoder(&self) -> &ClipTextModel {
        &self.encoder
    }

    /// The second text encoder (with projection).
    pub fn encoder_2(&self) -> &ClipTextModel {
        &self.encoder_2
    }

    /// The second tokenizer.
    pub fn tokenizer_2(&self) -> &ClipTokenizer {
        &self.tokenizer_2
    }
}
