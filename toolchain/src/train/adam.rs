//! Adam as `torch.optim.Adam` updates (no weight decay, no amsgrad), with a
//! state that can be saved and restored so that `--resume` continues exactly
//! where the interrupted run would have gone.
//!
//! Per parameter, on a step where it has a gradient `g` (PyTorch's
//! single-tensor path, `torch/optim/adam.py`):
//!
//! ```text
//! t += 1
//! m = m + (1 - b1) (g - m)                  // exp_avg.lerp_(g, 1 - b1)
//! v = b2 v + (1 - b2) g g                   // exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
//! denom = sqrt(v) / sqrt(1 - b2^t) + eps
//! p = p - lr / (1 - b1^t) * m / denom
//! ```
//!
//! Each parameter keeps its own `t`: one that got no gradient on a step is
//! left alone and its count does not advance, as in PyTorch.

use std::collections::{BTreeMap, HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

/// `torch.optim.Adam`'s default betas.
pub const DEFAULT_BETAS: (f64, f64) = (0.9, 0.999);
/// The betas AnomalyCLIP and APRIL-GAN train with (DESIGN.md section 2).
pub const PEER_BETAS: (f64, f64) = (0.5, 0.999);

/// Keys of the exported state: `{name}.step`, `{name}.exp_avg`, `{name}.exp_avg_sq`
/// (PyTorch's names for the same quantities).
pub const STEP_KEY: &str = "step";
pub const EXP_AVG_KEY: &str = "exp_avg";
pub const EXP_AVG_SQ_KEY: &str = "exp_avg_sq";

#[derive(Debug, thiserror::Error)]
pub enum AdamError {
    #[error("train/adam.rs: invalid setting: {0}")]
    Config(String),
    #[error("train/adam.rs: parameter `{0}` is listed twice")]
    DuplicateName(String),
    #[error("train/adam.rs: parameter `{name}` has dtype {dtype:?}; Adam needs a float dtype")]
    ParamDtype { name: String, dtype: DType },
    #[error("train/adam.rs: gradient of `{name}` has shape {found:?} / dtype {found_dtype:?}, the parameter {expected:?} / {expected_dtype:?}")]
    Gradient { name: String, expected: Vec<usize>, found: Vec<usize>, expected_dtype: DType, found_dtype: DType },
    #[error("train/adam.rs: optimizer state: {0}")]
    State(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, AdamError>;

/// Hyper-parameters. `Default` is PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: DEFAULT_BETAS, eps: 1e-8 }
    }
}

impl AdamConfig {
    /// The same checks `torch.optim.Adam` makes.
    pub fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(AdamError::Config(format!("learning rate {} must be finite and >= 0", self.lr)));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(AdamError::Config(format!("eps {} must be finite and >= 0", self.eps)));
        }
        for (i, b) in [b1, b2].into_iter().enumerate() {
            if !(0.0..1.0).contains(&b) {
                return Err(AdamError::Config(format!("beta{} = {b} must lie in [0, 1)", i + 1)));
            }
        }
        Ok(())
    }
}

/// First and second moments of one parameter and how many updates it has had.
#[derive(Debug, Clone)]
struct Moments {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

#[derive(Debug)]
struct Param {
    name: String,
    var: Var,
    /// `None` until the parameter's first gradient, as PyTorch's lazy state.
    moments: Option<Moments>,
}

#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    params: Vec<Param>,
}

impl Adam {
    /// An optimizer over named variables (names key the saved state, so they
    /// must be unique and stable across runs).
    pub fn new(params: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(params.len());
        for (name, var) in params {
            if !seen.insert(name.clone()) {
                return Err(AdamError::DuplicateName(name));
            }
            if !var.dtype().is_float() {
                return Err(AdamError::ParamDtype { name, dtype: var.dtype() });
            }
            out.push(Param { name, var, moments: None });
        }
        Ok(Self { config, params: out })
    }

    pub fn config(&self) -> AdamConfig {
        self.config
    }

    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Changes the learning rate for the following steps (the trainer's
    /// `lr = 0.001 / (epoch + 1)` schedule). The moments are unaffected.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        AdamConfig { lr, ..self.config }.validate()?;
        self.config.lr = lr;
        Ok(())
    }

    /// The parameters, in the order given to [`Adam::new`].
    pub fn params(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }

    /// Number of updates parameter `name` has had (0 before its first gradient).
    pub fn step_count(&self, name: &str) -> Option<u64> {
        self.params.iter().find(|p| p.name == name).map(|p| p.moments.as_ref().map_or(0, |m| m.step))
    }

    /// One update of every parameter that has a gradient in `grads`; the
    /// others are skipped. Every gradient's shape and dtype is checked before
    /// any parameter changes, so such a mistake leaves everything as it was.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let mut work = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            if g.dims() != p.var.dims() || g.dtype() != p.var.dtype() {
                return Err(AdamError::Gradient {
                    name: p.name.clone(),
                    expected: p.var.dims().to_vec(),
                    found: g.dims().to_vec(),
                    expected_dtype: p.var.dtype(),
                    found_dtype: g.dtype(),
                });
            }
            work.push((i, g.detach()));
        }
        let AdamConfig { lr, betas: (b1, b2), eps } = self.config;
        for (i, g) in work {
            let p = &mut self.params[i];
            let g = g.to_device(p.var.device())?;
            let (step, m, v) = match &p.moments {
                Some(mo) => (mo.step + 1, mo.exp_avg.clone(), mo.exp_avg_sq.clone()),
                None => (1, g.zeros_like()?, g.zeros_like()?),
            };
            let m = lerp(&m, &g, 1.0 - b1)?;
            let v = ((v * b2)? + (g.mul(&g)? * (1.0 - b2))?)?;
            // Scalars in f64 as Python computes them, then one rounding to the
            // tensor dtype where they meet the tensors.
            let t = step as f64;
            let bias_correction1 = 1.0 - b1.powf(t);
            let bias_correction2_sqrt = (1.0 - b2.powf(t)).powf(0.5);
            let step_size = lr / bias_correction1;
            let denom = (div_scalar(&v.sqrt()?, bias_correction2_sqrt)? + eps)?;
            let update = (m.div(&denom)? * (-step_size))?;
            let new = (p.var.as_tensor().detach() + update)?;
            p.var.set(&new)?;
            p.moments = Some(Moments { step, exp_avg: m, exp_avg_sq: v });
        }
        Ok(())
    }

    /// The state as named tensors, for a safetensors file: per parameter that
    /// has had a gradient, `{name}.step` (i64 scalar), `{name}.exp_avg` and
    /// `{name}.exp_avg_sq` (the parameter's shape and dtype). Learning rate and
    /// betas are configuration, not state: the trainer records them itself.
    pub fn export_state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            let Some(m) = &p.moments else { continue };
            let step = i64::try_from(m.step)
                .map_err(|_| AdamError::State(format!("step count of `{}` overflows i64", p.name)))?;
            out.insert(key(&p.name, STEP_KEY), Tensor::new(step, p.var.device())?);
            out.insert(key(&p.name, EXP_AVG_KEY), m.exp_avg.clone());
            out.insert(key(&p.name, EXP_AVG_SQ_KEY), m.exp_avg_sq.clone());
        }
        Ok(out)
    }

    /// Replaces the whole state with one from [`Adam::export_state`]
    /// (typically read back from safetensors). A parameter with no entries
    /// starts fresh. Unknown names, incomplete entries, shapes or dtypes that
    /// differ from the parameter, and step counts that are not whole numbers
    /// >= 1 are errors, and leave the optimizer unchanged.
    pub fn import_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let index: HashMap<&str, usize> = self.params.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();
        // name -> (step, exp_avg, exp_avg_sq) as found
        let mut found: BTreeMap<usize, [Option<&Tensor>; 3]> = BTreeMap::new();
        for (k, t) in state {
            let (name, field) = k
                .rsplit_once('.')
                .ok_or_else(|| AdamError::State(format!("key `{k}` is not `<parameter>.<field>`")))?;
            let slot = match field {
                STEP_KEY => 0,
                EXP_AVG_KEY => 1,
                EXP_AVG_SQ_KEY => 2,
                _ => return Err(AdamError::State(format!("key `{k}`: unknown field `{field}`"))),
            };
            let &i = index
                .get(name)
                .ok_or_else(|| AdamError::State(format!("key `{k}`: no parameter named `{name}` here")))?;
            found.entry(i).or_default()[slot] = Some(t);
        }
        let mut restored: Vec<(usize, Moments)> = Vec::with_capacity(found.len());
        for (i, slots) in found {
            let p = &self.params[i];
            let [Some(step), Some(exp_avg), Some(exp_avg_sq)] = slots else {
                return Err(AdamError::State(format!(
                    "parameter `{}` needs all of {STEP_KEY}, {EXP_AVG_KEY}, {EXP_AVG_SQ_KEY}",
                    p.name
                )));
            };
            let step = read_step(&p.name, step)?;
            let mut moments = Vec::with_capacity(2);
            for (field, t) in [(EXP_AVG_KEY, exp_avg), (EXP_AVG_SQ_KEY, exp_avg_sq)] {
                if t.dims() != p.var.dims() || t.dtype() != p.var.dtype() {
                    return Err(AdamError::State(format!(
                        "`{}.{field}` is {:?} {:?}, the parameter {:?} {:?}",
                        p.name,
                        t.dims(),
                        t.dtype(),
                        p.var.dims(),
                        p.var.dtype()
                    )));
                }
                moments.push(t.detach().to_device(p.var.device())?);
            }
            let exp_avg_sq = moments.pop().expect("two moments pushed");
            let exp_avg = moments.pop().expect("two moments pushed");
            restored.push((i, Moments { step, exp_avg, exp_avg_sq }));
        }
        for p in &mut self.params {
            p.moments = None;
        }
        for (i, m) in restored {
            self.params[i].moments = Some(m);
        }
        Ok(())
    }
}

fn key(name: &str, field: &str) -> String {
    format!("{name}.{field}")
}

fn read_step(name: &str, t: &Tensor) -> Result<u64> {
    if t.elem_count() != 1 {
        return Err(AdamError::State(format!("`{name}.{STEP_KEY}` has shape {:?}, expected a scalar", t.dims())));
    }
    let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
    if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v < 2f64.powi(53)) {
        return Err(AdamError::State(format!("`{name}.{STEP_KEY}` = {v} is not a whole number >= 1")));
    }
    Ok(v as u64)
}

/// `torch.lerp(start, end, w)` as ATen writes it: `start + w (end - start)`
/// for |w| < 0.5, else `end - (end - start)(1 - w)` (better rounded near w = 1).
fn lerp(start: &Tensor, end: &Tensor, w: f64) -> candle_core::Result<Tensor> {
    let diff = end.sub(start)?;
    if w.abs() < 0.5 {
        start + (diff * w)?
    } else {
        end - (diff * (1.0 - w))?
    }
}

/// `x / s` as a true division (Candle's `Tensor / f64` multiplies by `1 / s`,
/// which rounds differently from PyTorch's division).
fn div_scalar(x: &Tensor, s: f64) -> candle_core::Result<Tensor> {
    let s = Tensor::new(s, x.device())?.to_dtype(x.dtype())?;
    x.broadcast_div(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(vals: &[f32]) -> Var {
        Var::new(vals, &Device::Cpu).unwrap()
    }

    #[test]
    fn bad_settings_are_errors() {
        let bad = [
            AdamConfig { lr: -1.0, ..Default::default() },
            AdamConfig { betas: (1.0, 0.999), ..Default::default() },
            AdamConfig { betas: (0.9, -0.1), ..Default::default() },
            AdamConfig { eps: f64::NAN, ..Default::default() },
        ];
        for c in bad {
            assert!(matches!(Adam::new(vec![], c), Err(AdamError::Config(_))), "{c:?}");
        }
        let v = var(&[1.0]);
        let dup = vec![("a".to_string(), v.clone()), ("a".to_string(), v)];
        assert!(matches!(Adam::new(dup, AdamConfig::default()), Err(AdamError::DuplicateName(_))));
        let mut opt = Adam::new(vec![("a".into(), var(&[1.0]))], AdamConfig::default()).unwrap();
        assert!(opt.set_lr(f64::INFINITY).is_err());
        assert_eq!(opt.lr(), 1e-3);
    }

    #[test]
    fn a_gradient_of_the_wrong_shape_changes_nothing() {
        let (a, b) = (var(&[1.0, 2.0]), var(&[3.0]));
        let mut opt = Adam::new(vec![("a".into(), a.clone()), ("b".into(), b.clone())], AdamConfig::default()).unwrap();
        let mut grads = GradStore::default();
        grads.insert(a.as_tensor(), Tensor::new(&[1f32, 1.], &Device::Cpu).unwrap());
        grads.insert(b.as_tensor(), Tensor::new(&[1f32, 1.], &Device::Cpu).unwrap());
        assert!(matches!(opt.step(&grads), Err(AdamError::Gradient { .. })));
        assert_eq!(a.to_vec1::<f32>().unwrap(), [1.0, 2.0]);
        assert_eq!(opt.step_count("a"), Some(0));
    }

    #[test]
    fn malformed_state_is_rejected_and_leaves_state_alone() {
        let a = var(&[1.0, 2.0]);
        let mut opt = Adam::new(vec![("a".into(), a.clone())], AdamConfig::default()).unwrap();
        let mut grads = GradStore::default();
        grads.insert(a.as_tensor(), Tensor::new(&[0.5f32, -1.], &Device::Cpu).unwrap());
        opt.step(&grads).unwrap();
        let good = opt.export_state().unwrap();
        assert_eq!(good.len(), 3);

        let mut unknown = good.clone();
        unknown.insert("zz.exp_avg".into(), good["a.exp_avg"].clone());
        let mut partial = good.clone();
        partial.remove("a.exp_avg_sq");
        let mut shape = good.clone();
        shape.insert("a.exp_avg".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
        let mut step0 = good.clone();
        step0.insert("a.step".into(), Tensor::new(0i64, &Device::Cpu).unwrap());
        let mut field = good.clone();
        field.insert("a.momentum".into(), good["a.exp_avg"].clone());
        for bad in [unknown, partial, shape, step0, field] {
            assert!(matches!(opt.import_state(&bad), Err(AdamError::State(_))));
            assert_eq!(opt.step_count("a"), Some(1));
        }
        opt.import_state(&HashMap::new()).unwrap();
        assert_eq!(opt.step_count("a"), Some(0));
    }
}
