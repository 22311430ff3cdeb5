//! Scoring a batch of image files with the library (what `afr score` does,
//! minus the outputs): one detector, one map buffer reused and grown as the
//! image sizes require, a CSV line per image on stdout.
//!
//!     cargo run --release --example batch_score -- MODEL.onnx CATEGORY IMAGE...

use std::path::PathBuf;

use afr_runtime::detector::Detector;
use afr_runtime::image_io::load_rgb8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: batch_score MODEL.onnx CATEGORY IMAGE...";
    let model = PathBuf::from(args.next().ok_or(usage)?);
    let category_name = args.next().ok_or(usage)?;
    let images: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if images.is_empty() {
        return Err(usage.into());
    }
    let mut detector = Detector::load(&model)?;
    let category =
        detector.category_or_default(&category_name).ok_or("the model has neither this category nor `object`")?;
    let mut map = Vec::new();
    let mut failed = 0;
    println!("path,score,map_max");
    for path in &images {
        // A bad file is reported and skipped, as the CLI does.
        let image = match load_rgb8(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let (w, h) = (image.width() as usize, image.height() as usize);
        map.resize(w * h, 0.0);
        match detector.score(image.as_raw(), w, h, category, &mut map) {
            Ok(s) => println!("{},{},{}", path.display(), s.image, s.map_max),
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} images failed", images.len()).into());
    }
    Ok(())
}
