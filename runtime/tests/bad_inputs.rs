//! The catalogue of bad inputs (DESIGN.md section 5) run against the real
//! `afr` and `afr-quantize` binaries: images, model files, every metadata
//! value, flags and outputs. Each case must exit non-zero without a panic,
//! print one error line naming the file (or flag) and the problem, and leave
//! every file that existed before the run byte-identical (earlier reports,
//! models, a quantized output).
//!
//! Run with `--nocapture` to print each case's message (the README's
//! troubleshooting list).
//!
//! One list for both binaries: this file is also compiled into
//! afr-quantize's tests (quantize/tests/bad_inputs.rs), and each test
//! binary runs the cases of the binary its package builds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use afr_runtime::weights_sha256;
use image::{ImageBuffer, Luma, Rgb, RgbImage, Rgba};
use prost::Message;
use tract_onnx::pb::ModelProto;

#[path = "support/runner.rs"]
mod runner;

/// The binaries under test.
#[derive(Clone, Copy)]
enum Tool {
    Afr,
    Quantize,
}

/// One bad input: the command line, and what its error line must contain.
struct Case {
    name: &'static str,
    tool: Tool,
    args: Vec<String>,
    /// The file (or flag) the message must name.
    names: String,
    /// Words of the problem the message must state.
    problem: &'static str,
}

/// A run that must succeed: inputs the runtime converts or accepts on request.
struct Accepted {
    name: &'static str,
    args: Vec<String>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_string()
}

fn read_model(path: &Path) -> ModelProto {
    ModelProto::decode(&std::fs::read(path).expect("fixture")[..]).expect("fixture decodes")
}

fn write_model(path: &Path, m: &ModelProto) {
    std::fs::write(path, m.encode_to_vec()).expect("write model");
}

fn set_meta(m: &mut ModelProto, key: &str, value: Option<&str>) {
    m.metadata_props.retain(|e| e.key != key);
    if let Some(v) = value {
        m.metadata_props.push(tract_onnx::pb::StringStringEntryProto { key: key.into(), value: v.into() });
    }
}

/// PNG's CRC-32 (ISO 3309), for chunks written by hand.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG whose header says `width x height` (8-bit RGB) followed by a few
/// bytes of image data: valid as far as a header reader can tell, tiny on disk.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            snapshot(&path, out);
        } else {
            out.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
}

/// The files the cases read and the outputs they must not touch.
struct Setup {
    root: PathBuf,
    models: PathBuf,
    images: PathBuf,
    good_model: PathBuf,
    good_image: PathBuf,
    /// `afr score --out`, holding an earlier report.
    out: PathBuf,
    /// `afr-quantize --output`, an earlier quantized file.
    q_out: PathBuf,
    q_report: PathBuf,
    eval_json: PathBuf,
}

fn setup(root: &Path) -> Setup {
    let models = root.join("models");
    let images = root.join("images");
    let out = root.join("out");
    for d in [&models, &images, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The good model carries a weights hash, so every case also loads a checked file.
    let mut m = read_model(&fixture("model.onnx"));
    weights_sha256::stamp(&mut m);
    let good_model = models.join("good.onnx");
    write_model(&good_model, &m);
    let good_image = images.join("good.png");
    RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, 90])).save(&good_image).unwrap();
    std::fs::write(out.join("scores.csv"), b"path,category,score,verdict\nearlier.png,a,0.5,\n").unwrap();
    let q_out = root.join("earlier.fp16.onnx");
    std::fs::write(&q_out, b"an earlier quantized model").unwrap();
    let q_report = root.join("earlier-report.json");
    std::fs::write(&q_report, b"{\"earlier\": true}").unwrap();
    let eval_json = root.join("earlier-eval.json");
    std::fs::write(&eval_json, b"{\"categories\": {}}").unwrap();
    Setup { root: root.to_path_buf(), models, images, good_model, good_image, out, q_out, q_report, eval_json }
}

impl Setup {
    fn score(&self, model: &Path, image: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["score".into(), "--model".into(), s(model), "--out".into(), s(&self.out)];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(s(image));
        args
    }

    fn quantize(&self, input: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["--input".into(), s(input), "--precision".into(), "fp16".into()];
        args.extend(["--output".into(), s(&self.q_out), "--report".into(), s(&self.q_report), "--no-drift".into()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    fn bench(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["bench".into(), "--model".into(), s(&self.good_model), "--warmup".into(), "0".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    fn image(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.images.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// The good model with metadata `key` set to `value` (removed for `None`).
    fn meta(&self, file: &str, key: &str, value: Option<&str>) -> PathBuf {
        self.edited(file, |m| set_meta(m, key, value))
    }

    /// The good model changed by `edit`, its weights hash left as it was.
    fn edited(&self, file: &str, edit: impl FnOnce(&mut ModelProto)) -> PathBuf {
        let mut m = read_model(&self.good_model);
        edit(&mut m);
        let p = self.models.join(file);
        write_model(&p, &m);
        p
    }

    /// As [`Self::edited`], with the hash made for the changed weights: a
    /// file damaged before it was stamped, which only the later checks see.
    fn restamped(&self, file: &str, edit: impl FnOnce(&mut ModelProto)) -> PathBuf {
        self.edited(file, |m| {
            edit(m);
            weights_sha256::stamp(m);
        })
    }
}

fn graph(m: &mut ModelProto) -> &mut tract_onnx::pb::GraphProto {
    m.graph.as_mut().expect("the fixture has a graph")
}

fn cases(t: &Setup) -> Vec<Case> {
    let png = std::fs::read(&t.good_image).unwrap();
    let mut jpeg = Vec::new();
    RgbImage::from_fn(40, 30, |x, _| Rgb([x as u8 * 5, 7, 9]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let mut bmp = Vec::new();
    RgbImage::new(40, 30).write_to(&mut std::io::Cursor::new(&mut bmp), image::ImageFormat::Bmp).unwrap();
    // A PNG whose image data is damaged (its chunk checksum no longer matches).
    let mut damaged = png.clone();
    let idat = damaged.windows(4).position(|w| w == b"IDAT").unwrap();
    damaged[idat + 6] ^= 0xFF;
    let empty_dir = t.images.join("no-images");
    std::fs::create_dir_all(&empty_dir).unwrap();
    std::fs::write(empty_dir.join("notes.txt"), b"not an image").unwrap();
    let model_bytes = std::fs::read(&t.good_model).unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = t.models.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let model_dir = t.models.join("folder.onnx");
    std::fs::create_dir_all(&model_dir).unwrap();
    let gi = &t.good_image;
    let gm = &t.good_model;
    let long_name = "x".repeat(65);
    let many: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();

    let afr = |name, args: Vec<String>, names: &Path, problem| Case {
        name,
        tool: Tool::Afr,
        args,
        names: names.file_name().unwrap().to_string_lossy().into_owned(),
        problem,
    };
    let flag = |name, tool, args: Vec<String>, names: &str, problem| Case {
        name,
        tool,
        args,
        names: names.to_string(),
        problem,
    };
    let quant = |name, args: Vec<String>, names: &Path, problem| Case {
        name,
        tool: Tool::Quantize,
        args,
        names: names.file_name().unwrap().to_string_lossy().into_owned(),
        problem,
    };
    let img = |name, path: PathBuf, problem| afr(name, t.score(gm, &path, &[]), &path, problem);
    let model = |name, path: PathBuf, problem| afr(name, t.score(&path, gi, &[]), &path, problem);

    vec![
        // Images.
        img("image: empty file", t.image("empty.png", b""), "file is empty"),
        img("image: truncated PNG", t.image("cut.png", &png[..png.len() / 2]), "truncated"),
        img("image: truncated JPEG", t.image("cut.jpg", &jpeg[..jpeg.len() / 2]), "truncated"),
        img("image: truncated BMP", t.image("cut.bmp", &bmp[..bmp.len() / 2]), "truncated"),
        img("image: text named .png", t.image("text.png", b"hello, not an image"), "not a valid image"),
        img("image: unknown format, no extension", t.image("blob", b"\x00\x01\x02\x03 no header"), "unsupported"),
        img("image: damaged PNG data", t.image("damaged.png", &damaged), "not a valid image"),
        img("image: header says 16000x10000", t.image("huge.png", &png_header_only(16000, 10000)), "16000x10000"),
        img("image: header says 20000x1", t.image("wide.png", &png_header_only(20000, 1)), "image too large"),
        img("image: header says 0x10", t.image("zero.png", &png_header_only(0, 10)), "not a valid image"),
        img("image: missing file", t.images.join("missing.png"), "no such file"),
        img("image: folder without images", empty_dir.clone(), "no images found"),
        // Model files.
        model("model: missing file", t.models.join("missing.onnx"), "cannot read the model"),
        model("model: empty file", file("empty.onnx", b""), "empty file"),
        model("model: not ONNX (text)", file("text.onnx", b"this is not a protobuf at all"), "not a valid ONNX"),
        model("model: truncated", file("cut.onnx", &model_bytes[..model_bytes.len() / 3]), "not a valid ONNX"),
        model("model: a folder", model_dir.clone(), "is a directory"),
        model("model: no afr metadata", fixture("not_ours.onnx"), "not an AFR model"),
        model("model: future format version", fixture("future_version.onnx"), "not supported"),
        model(
            "model: one weight byte flipped",
            t.edited("flipped.onnx", |m| graph(m).initializer[0].raw_data[1] ^= 0x10),
            "weights do not match afr.weights_sha256",
        ),
        model(
            "model: a weight removed",
            t.edited("dropped.onnx", |m| {
                graph(m).initializer.retain(|i| i.name != "text/abnormal_prototype");
            }),
            "stored without",
        ),
        model(
            "model: weight dims far beyond its data",
            t.restamped("dims.onnx", |m| {
                let bias = graph(m).initializer.iter_mut().find(|i| i.name == "bias").unwrap();
                bias.dims = vec![1 << 40, 1 << 40];
            }),
            "tensor shape [1099511627776, 1099511627776] overflows",
        ),
        model(
            "model: inputs renamed",
            t.edited("inputs.onnx", |m| {
                let g = graph(m);
                g.input.iter_mut().filter(|i| i.name == "category").for_each(|i| i.name = "label".into());
            }),
            "inputs are",
        ),
        model(
            "model: anomaly_map output missing",
            t.edited("outputs.onnx", |m| graph(m).output.retain(|o| o.name != "anomaly_map")),
            "missing \"anomaly_map\"",
        ),
        // Each metadata value.
        model("metadata: afr.preset missing", t.meta("no-preset.onnx", "afr.preset", None), "afr.preset is missing"),
        model(
            "metadata: afr.format_version text",
            t.meta("v.onnx", "afr.format_version", Some("one")),
            "not supported",
        ),
        model("metadata: afr.input_size text", t.meta("s-text.onnx", "afr.input_size", Some("big")), "afr.input_size"),
        model("metadata: afr.input_size 0", t.meta("s-zero.onnx", "afr.input_size", Some("0")), "1..=4096"),
        model("metadata: afr.input_size 99999", t.meta("s-huge.onnx", "afr.input_size", Some("99999")), "1..=4096"),
        model(
            "metadata: afr.input_size disagrees with the graph",
            t.meta("s-64.onnx", "afr.input_size", Some("64")),
            "afr.input_size is 64 but the graph's image input is [1, 3, 32, 32]",
        ),
        model("metadata: afr.mean two values", t.meta("mean2.onnx", "afr.mean", Some("0.5,0.5")), "afr.mean"),
        model("metadata: afr.mean NaN", t.meta("mean-nan.onnx", "afr.mean", Some("NaN,0.4,0.4")), "three finite"),
        model("metadata: afr.std zero", t.meta("std0.onnx", "afr.std", Some("0.2,0,0.2")), "afr.std"),
        model("metadata: afr.resize bilinear", t.meta("bilinear.onnx", "afr.resize", Some("bilinear")), "bicubic"),
        model("metadata: afr.categories empty", t.meta("cat-empty.onnx", "afr.categories", Some("")), "empty category"),
        model("metadata: afr.categories twice", t.meta("cat-dup.onnx", "afr.categories", Some("a,a,object")), "twice"),
        model(
            "metadata: afr.categories longer than 64 bytes",
            t.meta("cat-long.onnx", "afr.categories", Some(&format!("a,{long_name},object"))),
            "longer than 64",
        ),
        model(
            "metadata: afr.categories over 128",
            t.meta("cat-many.onnx", "afr.categories", Some(&many.join(","))),
            "more than 128",
        ),
        model(
            "metadata: afr.categories more than the table's rows",
            t.meta("cat-rows.onnx", "afr.categories", Some("a,b,d,object")),
            "lists 4 categories but the category table bias has 3 rows",
        ),
        model("metadata: afr.precision int4", t.meta("int4.onnx", "afr.precision", Some("int4")), "fp32, fp16, int8"),
        model("metadata: afr.smoothing_sigma 1e30", t.meta("sig30.onnx", "afr.smoothing_sigma", Some("1e30")), "0..=4"),
        model("metadata: afr.smoothing_sigma 1e6", t.meta("sig6.onnx", "afr.smoothing_sigma", Some("1e6")), "0..=4"),
        model("metadata: afr.smoothing_sigma -1", t.meta("sig-.onnx", "afr.smoothing_sigma", Some("-1")), "0..=4"),
        model("metadata: afr.smoothing_sigma NaN", t.meta("signan.onnx", "afr.smoothing_sigma", Some("NaN")), "0..=4"),
        model(
            "metadata: afr.weights_sha256 not a hash",
            t.meta("sha.onnx", "afr.weights_sha256", Some("abc")),
            "64 lowercase hex digits",
        ),
        // Flags.
        flag(
            "flag: score --threads 0",
            Tool::Afr,
            t.score(gm, gi, &["--threads", "0"]),
            "--threads",
            "0 is not in 1..=1024",
        ),
        flag("flag: bench --threads 0", Tool::Afr, t.bench(&["--threads", "0"]), "--threads", "0 is not in 1..=1024"),
        flag(
            "flag: bench --frame 100000x100000",
            Tool::Afr,
            t.bench(&["--frame", "100000x100000"]),
            "--frame",
            "16384",
        ),
        flag(
            "flag: bench --frame 16000x10000",
            Tool::Afr,
            t.bench(&["--frame", "16000x10000"]),
            "--frame",
            "40-megapixel",
        ),
        flag("flag: bench --frame 0x5", Tool::Afr, t.bench(&["--frame", "0x5"]), "--frame", "WIDTHxHEIGHT"),
        flag("flag: bench --frame big", Tool::Afr, t.bench(&["--frame", "big"]), "--frame", "WIDTHxHEIGHT"),
        flag("flag: bench --frames 0", Tool::Afr, t.bench(&["--frames", "0"]), "--frames", "at least 1"),
        flag(
            "flag: score --threshold NaN",
            Tool::Afr,
            t.score(gm, gi, &["--threshold", "NaN"]),
            "--threshold",
            "finite",
        ),
        flag(
            "flag: score --strict-categories with an unknown category",
            Tool::Afr,
            t.score(gm, gi, &["--strict-categories", "--category", "zipper"]),
            "good.onnx",
            "zipper",
        ),
        flag("flag: unknown flag", Tool::Afr, t.score(gm, gi, &["--fast"]), "--fast", "unexpected argument"),
        flag(
            "flag: eval --format coco",
            Tool::Afr,
            vec![
                "eval".into(),
                "--model".into(),
                s(gm),
                "--data".into(),
                s(&t.images),
                "--format".into(),
                "coco".into(),
            ],
            "coco",
            "invalid value",
        ),
        afr(
            "flag: eval --data missing",
            vec![
                "eval".into(),
                "--model".into(),
                s(gm),
                "--data".into(),
                s(&t.root.join("no-data")),
                "--format".into(),
                "mvtec".into(),
                "--json".into(),
                s(&t.eval_json),
            ],
            &t.root.join("no-data"),
            "",
        ),
        // Outputs.
        flag(
            "output: score --out names a file",
            Tool::Afr,
            vec!["score".into(), "--model".into(), s(gm), "--out".into(), s(&t.q_report), s(gi)],
            "earlier-report.json",
            "--out names a file",
        ),
        // afr-quantize.
        quant(
            "quantize: empty file",
            t.quantize(&file("q-empty.onnx", b""), &[]),
            &t.models.join("q-empty.onnx"),
            "empty file",
        ),
        quant(
            "quantize: not ONNX",
            t.quantize(&t.models.join("text.onnx"), &[]),
            &t.models.join("text.onnx"),
            "not a valid ONNX",
        ),
        quant(
            "quantize: truncated",
            t.quantize(&t.models.join("cut.onnx"), &[]),
            &t.models.join("cut.onnx"),
            "not a valid ONNX",
        ),
        quant(
            "quantize: no afr metadata",
            t.quantize(&fixture("not_ours.onnx"), &[]),
            &fixture("not_ours.onnx"),
            "not an AFR model",
        ),
        quant(
            "quantize: one weight byte flipped",
            t.quantize(&t.models.join("flipped.onnx"), &[]),
            &t.models.join("flipped.onnx"),
            "weights do not match",
        ),
        quant(
            "quantize: already quantized",
            t.quantize(&t.meta("fp16.onnx", "afr.precision", Some("fp16")), &[]),
            &t.models.join("fp16.onnx"),
            "already quantized",
        ),
        quant(
            "quantize: bad metadata (sigma 1e30)",
            t.quantize(&t.models.join("sig30.onnx"), &[]),
            &t.models.join("sig30.onnx"),
            "afr.smoothing_sigma",
        ),
        quant(
            "quantize: missing input",
            t.quantize(&t.models.join("nope.onnx"), &[]),
            &t.models.join("nope.onnx"),
            "no such file",
        ),
        flag(
            "quantize: output is the input",
            Tool::Quantize,
            vec!["--input".into(), s(gm), "--precision".into(), "fp16".into(), "--output".into(), s(gm)],
            "good.onnx",
            "would overwrite the input",
        ),
        flag(
            "quantize: output folder missing",
            Tool::Quantize,
            vec![
                "--input".into(),
                s(gm),
                "--precision".into(),
                "fp16".into(),
                "--output".into(),
                s(&t.root.join("no/x.onnx")),
            ],
            "x.onnx",
            "does not exist",
        ),
        flag(
            "quantize: --precision fp32",
            Tool::Quantize,
            vec!["--input".into(), s(gm), "--precision".into(), "fp32".into(), "--output".into(), s(&t.q_out)],
            "--precision",
            "fp32 is the export's own precision",
        ),
        flag(
            "quantize: --precision int4",
            Tool::Quantize,
            vec!["--input".into(), s(gm), "--precision".into(), "int4".into(), "--output".into(), s(&t.q_out)],
            "--precision",
            "int4",
        ),
        flag(
            "quantize: --max-calibration-images 0",
            Tool::Quantize,
            t.quantize(gm, &["--max-calibration-images", "0"]),
            "--max-calibration-images",
            "not a positive whole number",
        ),
        flag(
            "quantize: --calibration folder missing",
            Tool::Quantize,
            t.quantize(gm, &["--calibration", &s(&t.root.join("no-calibration"))]),
            "no-calibration",
            "",
        ),
    ]
}

fn accepted(t: &Setup) -> Vec<Accepted> {
    let gm = &t.good_model;
    let save = |name: &str, f: &dyn Fn(&Path)| {
        let p = t.images.join(name);
        f(&p);
        p
    };
    let deep = save("deep16.png", &|p| {
        ImageBuffer::<Rgb<u16>, Vec<u16>>::from_fn(16, 16, |x, y| Rgb([x as u16 * 4000, y as u16 * 4000, 9]))
            .save(p)
            .unwrap()
    });
    let gray = save("gray.png", &|p| {
        ImageBuffer::<Luma<u8>, Vec<u8>>::from_fn(24, 20, |x, _| Luma([x as u8 * 9])).save(p).unwrap()
    });
    let rgba = save("rgba.png", &|p| {
        ImageBuffer::<Rgba<u8>, Vec<u8>>::from_fn(20, 20, |x, y| Rgba([x as u8 * 9, y as u8 * 9, 50, 7]))
            .save(p)
            .unwrap()
    });
    let out = t.root.join("accepted");
    let score = |model: &Path, image: &Path, extra: &[&str]| {
        let mut args = vec!["score".into(), "--model".into(), s(model), "--out".into(), s(&out)];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(s(image));
        args
    };
    vec![
        Accepted { name: "16-bit RGB PNG (rounded to 8 bits)", args: score(gm, &deep, &[]) },
        Accepted { name: "grayscale PNG (replicated to RGB)", args: score(gm, &gray, &[]) },
        Accepted { name: "RGBA PNG (alpha dropped)", args: score(gm, &rgba, &[]) },
        Accepted {
            name: "model without afr.weights_sha256 (loads unchecked)",
            args: score(&fixture("model.onnx"), &gray, &[]),
        },
        Accepted {
            name: "flipped weight byte under --skip-weights-check",
            args: score(&t.models.join("flipped.onnx"), &gray, &["--skip-weights-check"]),
        },
    ]
}

/// The binary of `tool` when this test's package builds it.
fn binary(tool: Tool) -> Option<&'static str> {
    match tool {
        Tool::Afr => option_env!("CARGO_BIN_EXE_afr"),
        Tool::Quantize => option_env!("CARGO_BIN_EXE_afr-quantize"),
    }
}

#[test]
fn every_bad_input_is_refused_in_one_line_and_earlier_outputs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = setup(dir.path());
    let cases = cases(&t);
    let mut failures = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut ran = 0;
    for case in &cases {
        assert!(names.insert(case.name), "case {:?} is listed twice", case.name);
        let Some(bin) = binary(case.tool) else { continue };
        ran += 1;
        let mut before = BTreeMap::new();
        snapshot(&t.root, &mut before);
        let out = runner::command(bin).args(&case.args).output().expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        let mut problems = Vec::new();
        if out.status.success() {
            problems.push("exited 0".to_string());
        }
        if out.status.code() == Some(101) || stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        match errors[..] {
            [line] => {
                if !line.contains(&case.names) {
                    problems.push(format!("does not name {:?}", case.names));
                }
                if !line.contains(case.problem) {
                    problems.push(format!("does not say {:?}", case.problem));
                }
                println!("{:<55} {line}", case.name);
            }
            _ => problems.push(format!("{} error lines", errors.len())),
        }
        let mut after = BTreeMap::new();
        snapshot(&t.root, &mut after);
        for (path, bytes) in &before {
            if after.get(path) != Some(bytes) {
                problems.push(format!("changed {}", path.display()));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n    stderr: {stderr}", case.name, problems.join("; ")));
        }
    }
    println!("{ran} of the catalogue's {} bad-input cases run by this binary", cases.len());
    assert!(cases.len() >= 40, "the catalogue has {} cases", cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn converted_inputs_and_opt_outs_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let t = setup(dir.path());
    // The flipped model the opt-out reads.
    drop(cases(&t));
    let Some(afr) = binary(Tool::Afr) else { return };
    for case in accepted(&t) {
        let out = runner::command(afr).args(&case.args).output().expect("run afr");
        assert!(out.status.success(), "{}: {}", case.name, String::from_utf8_lossy(&out.stderr));
    }
}
