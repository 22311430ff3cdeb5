//! The trainable tensors of AFR-CLIP, by name. Everything else (CLIP, the
//! ResNet) is a plain frozen tensor and never receives a gradient.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::nn::Linear;
use crate::weights::{random_tensor, Init, WeightError};

/// How a trainable tensor starts.
#[derive(Debug, Clone, Copy)]
pub enum ParamInit {
    /// The identity matrix (adapters start as no-ops, DESIGN.md section 2).
    Identity,
    Zeros,
    /// PyTorch's default for `nn.Linear` / 1x1 convolutions: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    Uniform {
        fan_in: usize,
    },
    Normal(f64),
}

/// Named trainable variables, seeded per name.
#[derive(Debug)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    seed: u64,
    device: Device,
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self { vars: BTreeMap::new(), seed, device: device.clone() }
    }

    /// The variable `name`, created on first use.
    pub fn get(&mut self, name: &str, shape: &[usize], init: ParamInit) -> candle_core::Result<Tensor> {
        if let Some(v) = self.vars.get(name) {
            return Ok(v.as_tensor().clone());
        }
        let dev = &self.device;
        let t = match init {
            ParamInit::Identity => Tensor::eye(shape[0], DType::F32, dev)?,
            ParamInit::Zeros => Tensor::zeros(shape, DType::F32, dev)?,
            ParamInit::Uniform { fan_in } => {
                let b = 1.0 / (fan_in as f64).sqrt();
                random_tensor(self.seed, name, shape, Init::Uniform(-b, b), dev).map_err(candle_core::Error::wrap)?
            }
            ParamInit::Normal(std) => {
                random_tensor(self.seed, name, shape, Init::Normal(std), dev).map_err(candle_core::Error::wrap)?
            }
        };
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.vars.insert(name.to_string(), var);
        Ok(out)
    }

    /// A trainable `{name}.weight` `[d_out, d_in]` and `{name}.bias`.
    pub fn linear(&mut self, name: &str, d_in: usize, d_out: usize, identity: bool) -> candle_core::Result<Linear> {
        let init = if identity { ParamInit::Identity } else { ParamInit::Uniform { fan_in: d_in } };
        let bias_init = if identity { ParamInit::Zeros } else { ParamInit::Uniform { fan_in: d_in } };
        Ok(Linear::new(
            self.get(&format!("{name}.weight"), &[d_out, d_in], init)?,
            Some(self.get(&format!("{name}.bias"), &[d_out], bias_init)?),
        ))
    }

    pub fn vars(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// (name, variable) pairs, as the optimiser takes them.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn num_params(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// The current values, by name (for checkpoints).
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect()
    }

    /// Overwrites every variable from `values`; a missing name or another
    /// shape is an error naming `origin`.
    pub fn assign(&self, values: &std::collections::HashMap<String, Tensor>, origin: &Path) -> Result<(), WeightError> {
        let origin_s = origin.display().to_string();
        for (name, var) in &self.vars {
            let v = values.get(name).ok_or_else(|| WeightError::Missing {
                origin: origin_s.clone(),
                name: name.clone(),
                hint: " (a checkpoint of another configuration?)".into(),
            })?;
            if v.dims() != var.dims() {
                return Err(WeightError::Shape {
                    origin: origin_s.clone(),
                    name: name.clone(),
                    expected: var.dims().to_vec(),
                    found: v.dims().to_vec(),
                });
            }
            var.set(&v.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        Ok(())
    }
}
