//! The Candle reference evaluation: a trained run on a dataset, per category
//! then macro-averaged, with the runtime's metrics and report (DESIGN.md
//! sections 3 and 4). Maps are upsampled to the input size and smoothed as
//! the runtime does, and compared with masks resized to the same size.

use std::collections::BTreeMap;
use std::path::Path;

use afr_runtime::dataset::{Dataset, Format, Sample, Split};
use afr_runtime::metrics::{CategoryEvaluator, PixelData};
use afr_runtime::postprocess::{default_sigma, Upsampler};
use afr_runtime::report::{CategoryReport, Report};
use candle_core::Device;

use crate::train::data::ImageLoader;
use crate::train::run::{self, RunConfig};
use crate::train::trainer::TrainError;

/// Evaluates the run in `run_dir` on `data`; `progress(done, total)` after each batch.
pub fn evaluate(
    run_dir: &Path,
    data_root: &Path,
    format: Format,
    categories: Option<&[String]>,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, TrainError> {
    let cfg = RunConfig::read(run_dir)?;
    let data = Dataset::open(data_root, format, Split::Test, categories)?;
    // Zero-shot: the stateless prompt is built from each test category's name.
    let (model, params) = crate::train::model::build(&cfg, &data.categories(), device)?;
    params
        .assign(&run::load_tensors(run_dir, &cfg.checkpoint, &cfg, device)?, &run_dir.join(&cfg.checkpoint))
        .map_err(|e| TrainError::Setup(e.to_string()))?;
    let size = cfg.preset.input_size;
    let g = cfg.preset.grid();
    let loader = ImageLoader::new(size);
    let upsampler = Upsampler::new((g, g), (size, size), default_sigma(size));
    let (mut map, mut scratch) = (vec![0f32; size * size], vec![0f32; upsampler.scratch_len()]);
    let total = data.samples.len();
    let mut done = 0;
    let mut results = BTreeMap::new();
    for category in data.categories() {
        let samples: Vec<&Sample> = data.samples_of(&category).collect();
        // Pixel metrics only where every anomalous image has a mask.
        let pixel_level = samples.iter().all(|s| !s.anomalous || s.mask.is_some());
        let mut eval = CategoryEvaluator::new();
        for chunk in samples.chunks(cfg.train.batch_size.max(1)) {
            let batch = loader.batch(chunk, |c| model.tables().index_of(c), device)?;
            let out = model.forward(&batch.pixels, &batch.categories)?;
            let scores = out.image_score.to_vec1::<f32>()?;
            let maps = out.anomaly_map.flatten_from(1)?.to_vec2::<f32>()?;
            let masks = batch.masks.flatten_from(1)?.to_vec2::<f32>()?;
            for (i, sample) in chunk.iter().enumerate() {
                let name = sample.image.display().to_string();
                let mask: Vec<bool> = masks[i].iter().map(|&m| m > 0.5).collect();
                let pixels = if pixel_level {
                    upsampler.run(&maps[i], &mut map, &mut scratch);
                    Some(PixelData { map: &map, mask: &mask, width: size, height: size })
                } else {
                    None
                };
                eval.add(&name, scores[i], sample.anomalous, pixels)
                    .map_err(|e| TrainError::Setup(format!("{name}: {e}")))?;
            }
            done += chunk.len();
            progress(done, total);
        }
        results.insert(category.clone(), CategoryReport::own(&category, eval.finish()));
    }
    Ok(Report::new(run_dir.display().to_string(), data_root.display().to_string(), results))
}
