//! `afr-toolchain inspect`: what a preset and a set of weight files amount to.

use afr_toolchain::clip::{check_config, Naming, TextTransformer, VisionTransformer};
use afr_toolchain::preset::Preset;
use afr_toolchain::resnet::ResNet;
use afr_toolchain::weights::Weights;
use anyhow::Context;
use candle_core::Device;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Backbone preset: vit-l14-336, vit-b16, tiny, or a path to a preset JSON file.
    #[arg(long)]
    preset: String,
    /// CLIP weights: a Hugging Face CLIPModel directory or model.safetensors
    /// (config.json beside it is checked against the preset), an OpenAI /
    /// open_clip state dict saved as safetensors, or `random:SEED`.
    #[arg(long)]
    clip: String,
    /// ResNet weights for self prompting (torchvision or timm safetensors, or
    /// `random:SEED`). Without it only CLIP is loaded.
    #[arg(long)]
    resnet: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let preset = Preset::resolve(&args.preset)?;
    let dev = Device::Cpu;
    let w = Weights::open(&args.clip, &dev).with_context(|| format!("loading CLIP weights {}", args.clip))?;
    let naming = Naming::detect(&w)?;
    check_config(&w, naming, &preset.clip)?;
    let vision = VisionTransformer::load(&w, naming, &preset.clip).context("loading the CLIP image encoder")?;
    let (_, vision_params) = w.loaded();
    drop(vision);
    TextTransformer::load(&w, naming, &preset.clip).context("loading the CLIP text encoder")?;
    let (clip_tensors, clip_params) = w.loaded();
    let unused = w.unused();

    let resnet = match &args.resnet {
        Some(spec) => {
            let mut rw = Weights::open(spec, &dev).with_context(|| format!("loading ResNet weights {spec}"))?;
            ResNet::load(&mut rw, &preset.resnet).context("loading the ResNet")?;
            let (tensors, params) = rw.loaded();
            Some((rw.origin(), tensors, params, rw.unused()))
        }
        None => None,
    };

    let v = &preset.clip.vision;
    let t = &preset.clip.text;
    let r = &preset.resnet;
    if args.json {
        let out = json!({
            "preset": preset.name,
            "input_size": preset.input_size,
            "grid": preset.grid(),
            "taps": preset.taps(),
            "sp_layers": [preset.sp_layers(1).start(), preset.sp_layers(1).end()],
            "clip": {
                "source": w.origin(), "naming": format!("{naming:?}"),
                "vision": v, "text": t, "embed_dim": preset.clip.embed_dim,
                "activation": preset.clip.activation,
                "tensors": clip_tensors, "parameters": clip_params,
                "vision_parameters": vision_params, "text_parameters": clip_params - vision_params,
                "unused_tensors": unused,
            },
            "resnet": resnet.as_ref().map(|(origin, tensors, params, unused)| json!({
                "source": origin, "config": r, "tensors": tensors, "parameters": params,
                "out_dim": r.out_dim(), "unused_tensors": unused,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let g = preset.grid();
    println!("preset {}: {}", preset.name, preset.description);
    println!(
        "  input {0}x{0} px -> {1}x{1} patches; stage taps after layers {2:?}; SP prompts on layers {3}..={4} \
         (train --sp-stages N carries them to layer N*{5})",
        preset.input_size,
        g,
        preset.taps(),
        preset.sp_layers(1).start(),
        preset.sp_layers(1).end(),
        v.layers / 4
    );
    println!("CLIP from {} ({naming:?} naming)", w.origin());
    let n = v.native_grid();
    let interpolated = if n == g { String::new() } else { format!(" (positions interpolated bicubically to {g}x{g})") };
    println!(
        "  image encoder: ViT, {} layers, width {}, {} heads, MLP {}, patch {}, native grid {n}x{n}{interpolated}",
        v.layers, v.width, v.heads, v.intermediate, v.patch_size,
    );
    println!("    {} parameters", human(vision_params));
    println!(
        "  text encoder: {} layers, width {}, {} heads, context {}, vocabulary {}",
        t.layers, t.width, t.heads, t.context_length, t.vocab_size
    );
    println!("    {} parameters", human(clip_params - vision_params));
    println!(
        "  embedding width {}, activation {:?}; {} tensors, {} parameters in all",
        preset.clip.embed_dim,
        preset.clip.activation,
        clip_tensors,
        human(clip_params)
    );
    if !unused.is_empty() {
        println!("  not used from the file: {}", unused.join(", "));
    }
    match resnet {
        Some((origin, tensors, params, unused)) => {
            println!("ResNet from {origin}");
            println!(
                "  {:?} blocks {:?}, stem {}, planes {:?}, pooled feature {}; {} tensors, {} parameters",
                r.block,
                r.layers,
                r.stem_width,
                r.planes,
                r.out_dim(),
                tensors,
                human(params)
            );
            if !unused.is_empty() {
                println!("  not used from the file: {}", unused.join(", "));
            }
        }
        None => println!("ResNet: not loaded (pass --resnet)"),
    }
    Ok(())
}

fn human(n: usize) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1}K ({n})", n as f64 / 1e3),
        _ => format!("{:.2}M ({n})", n as f64 / 1e6),
    }
}
