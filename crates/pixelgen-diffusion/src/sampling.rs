//! Sampling presets: the steps, guidance, sampler and schedule overrides a kind of model wants
//! ("quality" SDXL, "fast" LCM-LoRA, "turbo" SDXL-Turbo), as plain serde data.

use serde::{Deserialize, Serialize};

use crate::config::TimestepSpacing;
use crate::error::{Result, invalid};
use crate::pipeline::GenerationParams;
use crate::scheduler::SchedulerKind;

/// The names of the built-in presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresetName {
    /// SDXL (+ pixel LoRA): 30 steps of DPM++ 2M Karras at guidance 6.
    Quality,
    /// SDXL + LCM-LoRA: 8 steps of the LCM scheduler at guidance 1.5.
    Fast,
    /// SDXL-Turbo: 1 step of Euler Ancestral, trailing spacing, no guidance.
    Turbo,
}

impl PresetName {
    /// Every built-in preset name.
    pub const ALL: [PresetName; 3] = [PresetName::Quality, PresetName::Fast, PresetName::Turbo];

    /// The name as written in recipes and registry files.
    pub fn as_str(self) -> &'static str {
        match self {
            PresetName::Quality => "quality",
            PresetName::Fast => "fast",
            PresetName::Turbo => "turbo",
        }
    }

    /// The preset's settings.
    pub fn preset(self) -> SamplingPreset {
        match self {
            PresetName::Quality => SamplingPreset {
                steps: 30,
                guidance_scale: 6.0,
                sampler: SchedulerKind::DpmPlusPlus2M,
                karras: Some(true),
                timestep_spacing: None,
            },
            // LCM-LoRA model card: 2-8 steps, guidance 1-2, LCMScheduler.
            PresetName::Fast => SamplingPreset {
                steps: 8,
                guidance_scale: 1.5,
                sampler: SchedulerKind::Lcm,
                karras: None,
                timestep_spacing: None,
            },
            // SDXL-Turbo model card: 1-4 steps, guidance 0; its scheduler config is Euler
            // Ancestral with trailing spacing (forced here, so a base folder's leading spacing
            // does not leak in).
            PresetName::Turbo => SamplingPreset {
                steps: 1,
                guidance_scale: 0.0,
                sampler: SchedulerKind::EulerAncestral,
                karras: None,
                timestep_spacing: Some(TimestepSpacing::Trailing),
            },
        }
    }

    /// The preset called `name`; an unknown name is an error listing the known ones.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                invalid(
                    "sampling preset",
                    format!("`{name}` is unknown; known presets: {}", known.join(", ")),
                )
            })
    }
}

impl std::fmt::Display for PresetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to sample: fills the sampling fields of [`GenerationParams`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingPreset {
    /// Inference steps.
    pub steps: usize,
    /// Classifier-free guidance scale (1 or less: off).
    pub guidance_scale: f64,
    /// The sampler.
    pub sampler: SchedulerKind,
    /// Karras sigmas (Euler, DPM++ 2M); `None` keeps the folder's setting.
    pub karras: Option<bool>,
    /// Timestep spacing; `None` keeps the folder's setting.
    pub timestep_spacing: Option<TimestepSpacing>,
}

impl Default for SamplingPreset {
    fn default() -> Self {
        PresetName::Quality.preset()
    }
}

impl SamplingPreset {
    /// The built-in preset called `name` (`quality`, `fast`, `turbo`).
    pub fn named(name: &str) -> Result<Self> {
        Ok(PresetName::parse(name)?.preset())
    }

    /// Writes steps, guidance, sampler, Karras and spacing into `params`, leaving the prompt,
    /// size and eta as they are.
    pub fn apply(&self, params: &mut GenerationParams) {
        params.steps = self.steps;
        params.guidance_scale = self.guidance_scale;
        params.sampler = Some(self.sampler);
        params.karras = self.karras;
        params.timestep_spacing = self.timestep_spacing;
    }

    /// Parameters for `prompt` with this preset and every other field at its default.
    pub fn params(&self, prompt: impl Into<String>) -> GenerationParams {
        let mut p = GenerationParams {
            prompt: prompt.into(),
            ..GenerationParams::default()
        };
        self.apply(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SdxlConfigs;
    use crate::pipeline::scheduler_config;
    use crate::scheduler;

    fn timesteps(preset: &SamplingPreset) -> Vec<f64> {
        // SDXL base's own scheduler config says `leading`: the preset must override it.
        let folder = SdxlConfigs::sdxl_base("unused").unwrap().scheduler;
        let params = preset.params("x");
        let config = scheduler_config(&folder, &params);
        scheduler::build(params.sampler.unwrap(), &config, params.steps)
            .unwrap()
            .timesteps()
            .to_vec()
    }

    #[test]
    fn turbo_uses_trailing_timesteps_over_a_leading_folder() {
        let turbo = SamplingPreset::named("turbo").unwrap();
        assert_eq!(turbo.guidance_scale, 0.0);
        // diffusers, trailing: round(arange(1000, 0, -1000 / n)) - 1.
        assert_eq!(timesteps(&turbo), vec![999.0]);
        let four = SamplingPreset {
            steps: 4,
            ..turbo.clone()
        };
        assert_eq!(timesteps(&four), vec![999.0, 749.0, 499.0, 249.0]);
        // Without the override the folder's leading spacing gives another table.
        let leading = SamplingPreset {
            timestep_spacing: None,
            ..four
        };
        assert_eq!(timesteps(&leading), vec![751.0, 501.0, 251.0, 1.0]);
    }

    #[test]
    fn fast_is_lcm_and_quality_is_karras_dpm() {
        let fast = SamplingPreset::named("fast").unwrap();
        let p = fast.params("a");
        assert_eq!(
            (p.steps, p.sampler, p.guidance_scale),
            (8, Some(SchedulerKind::Lcm), 1.5)
        );
        assert_eq!(timesteps(&fast).len(), 8);
        let q = SamplingPreset::named("quality").unwrap().params("a");
        assert_eq!(q.sampler, Some(SchedulerKind::DpmPlusPlus2M));
        assert_eq!(q.karras, Some(true));
        assert_eq!(q.steps, 30);
        // Apply keeps the prompt and size.
        let mut own = GenerationParams {
            prompt: "keep".into(),
            width: 512,
            ..GenerationParams::default()
        };
        SamplingPreset::named("turbo").unwrap().apply(&mut own);
        assert_eq!(
            (own.prompt.as_str(), own.width, own.steps),
            ("keep", 512, 1)
        );
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        let msg = SamplingPreset::named("ultra").unwrap_err().to_string();
        for name in ["ultra", "quality", "fast", "turbo"] {
            assert!(msg.contains(name), "{msg}");
        }
    }

    #[test]
    fn presets_round_trip_through_json() {
        for name in PresetName::ALL {
            let p = name.preset();
            let text = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<SamplingPreset>(&text).unwrap(), p);
            let n: PresetName = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(n, name);
        }
    }
}
