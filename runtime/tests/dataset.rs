//! Image decoding (limits, pixel formats, bad files) and the dataset readers, on small trees
//! built in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use afr_runtime::dataset::{Dataset, DatasetError, Format, Sample, Split};
use afr_runtime::image_io::{self, ImageError};
use image::{GrayImage, ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba};

// ---------------------------------------------------------------- helpers

fn rgb(path: &Path, w: u32, h: u32, value: u8) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_pixel(w, h, Rgb([value, value / 2, 255 - value])).save(path).unwrap();
}

fn mask(path: &Path, w: u32, h: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut m = GrayImage::new(w, h);
    m.put_pixel(0, 0, Luma([255]));
    m.save(path).unwrap();
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn names(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .map(|s| {
            let rel = |p: &Path| {
                let parts: Vec<_> = p.iter().rev().take(3).collect();
                parts.into_iter().rev().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/")
            };
            format!(
                "{}:{}:{}:{}:{}",
                s.category,
                s.defect,
                s.anomalous as u8,
                rel(&s.image),
                s.mask.as_deref().map(rel).unwrap_or_default()
            )
        })
        .collect()
}

fn cats(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// A minimal PNG writer for what the image crate will not write: palette images and headers
// that announce huge sizes. Stored (uncompressed) deflate blocks keep it short.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push((i + 1 == blocks.len()) as u8);
        let len = block.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

fn png_header(w: u32, h: u32, depth: u8, colour: u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, colour, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    out
}

/// 2x1 palette PNG: pixel 0 -> palette[1], pixel 1 -> palette[0].
fn palette_png() -> Vec<u8> {
    let mut out = png_header(2, 1, 8, 3);
    chunk(&mut out, b"PLTE", &[10, 20, 30, 200, 100, 50]);
    chunk(&mut out, b"IDAT", &zlib_stored(&[0, 1, 0]));
    chunk(&mut out, b"IEND", &[]);
    out
}

// ---------------------------------------------------------------- image_io

#[test]
fn rgb8_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.png");
    let mut img = RgbImage::new(3, 2);
    img.put_pixel(2, 1, Rgb([1, 2, 3]));
    img.save(&p).unwrap();
    assert_eq!(image_io::load_rgb8(&p).unwrap(), img);
    assert_eq!(image_io::dimensions(&p).unwrap(), (3, 2));
}

#[test]
fn grayscale_is_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.png");
    GrayImage::from_pixel(2, 2, Luma([77])).save(&p).unwrap();
    let img = image_io::load_rgb8(&p).unwrap();
    assert!(img.pixels().all(|px| px.0 == [77, 77, 77]));
}

#[test]
fn sixteen_bit_is_rounded_to_eight() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g16.png");
    // 128.5 * 257 = 33024.5: 33024 rounds down to 128, 33025 up to 129; 65535 -> 255.
    let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_raw(3, 1, vec![33024, 33025, 65535]).unwrap();
    img.save(&p).unwrap();
    let out = image_io::load_rgb8(&p).unwrap();
    let reds: Vec<u8> = out.pixels().map(|px| px.0[0]).collect();
    assert_eq!(reds, vec![128, 129, 255]);

    let p = dir.path().join("rgb16.png");
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_raw(1, 1, vec![0, 257 * 10, 65535]).unwrap();
    img.save(&p).unwrap();
    assert_eq!(image_io::load_rgb8(&p).unwrap().get_pixel(0, 0).0, [0, 10, 255]);
}

#[test]
fn alpha_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rgba.png");
    let mut img = ImageBuffer::<Rgba<u8>, _>::new(2, 1);
    img.put_pixel(0, 0, Rgba([10, 20, 30, 0]));
    img.put_pixel(1, 0, Rgba([40, 50, 60, 255]));
    img.save(&p).unwrap();
    let out = image_io::load_rgb8(&p).unwrap();
    assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30]);
    assert_eq!(out.get_pixel(1, 0).0, [40, 50, 60]);

    let p = dir.path().join("la.png");
    ImageBuffer::<LumaA<u8>, _>::from_pixel(1, 1, LumaA([90, 7])).save(&p).unwrap();
    assert_eq!(image_io::load_rgb8(&p).unwrap().get_pixel(0, 0).0, [90, 90, 90]);
}

#[test]
fn palette_is_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pal.png");
    write(&p, &palette_png());
    let out = image_io::load_rgb8(&p).unwrap();
    assert_eq!(out.get_pixel(0, 0).0, [200, 100, 50]);
    assert_eq!(out.get_pixel(1, 0).0, [10, 20, 30]);
}

#[test]
fn format_is_sniffed_not_taken_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let bmp = dir.path().join("x.bmp");
    rgb(&bmp, 2, 2, 100);
    let lying = dir.path().join("x.png");
    fs::copy(&bmp, &lying).unwrap();
    assert_eq!(image_io::load_rgb8(&lying).unwrap(), image_io::load_rgb8(&bmp).unwrap());
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.png");
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.png") && e.to_string().contains("not found"));
}

#[test]
fn empty_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.png");
    write(&p, b"");
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::Empty { .. }), "{e:?}");
    let d = dir.path().join("adir.png");
    fs::create_dir(&d).unwrap();
    let e = image_io::load_rgb8(&d).unwrap_err();
    assert!(matches!(e, ImageError::Unreadable { .. }), "{e:?}");
    assert!(e.to_string().contains("adir.png"));
}

#[test]
fn truncated_png() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.png");
    let mut img = RgbImage::new(64, 64);
    for (x, y, px) in img.enumerate_pixels_mut() {
        *px = Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, (x ^ y) as u8]);
    }
    img.save(&full).unwrap();
    let bytes = fs::read(&full).unwrap();
    let p = dir.path().join("cut.png");
    write(&p, &bytes[..bytes.len() / 2]);
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::Truncated { .. }), "{e:?}");
    assert!(e.to_string().contains("cut.png") && e.to_string().contains("truncated"));
}

#[test]
fn garbage_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("garbage.png");
    write(&p, b"this is not an image at all, just some text bytes");
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("garbage.png"));

    let p = dir.path().join("garbage.xyz");
    write(&p, b"still not an image");
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("garbage.xyz"));
}

#[test]
fn huge_images_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // Over the width limit.
    let p = dir.path().join("wide.png");
    write(&p, &png_header(20000, 4, 8, 2));
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("wide.png"));
    let e = image_io::dimensions(&p).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
    // Within the dimension limits, over the memory limit: 16000^2 x 8 bytes = 2 GB.
    let p = dir.path().join("deep.png");
    let mut deep = png_header(16000, 16000, 16, 6);
    chunk(&mut deep, b"IDAT", &zlib_stored(&[0; 64]));
    chunk(&mut deep, b"IEND", &[]);
    write(&p, &deep);
    let e = image_io::load_rgb8(&p).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
}

#[test]
fn masks_are_any_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.png");
    GrayImage::from_raw(4, 1, vec![0, 1, 2, 255]).unwrap().save(&p).unwrap();
    assert_eq!(image_io::load_mask(&p).unwrap().into_raw(), vec![0, 255, 255, 255]);

    // 16-bit value 1 would round to 0 in 8 bits: still anomalous.
    let p = dir.path().join("m16.png");
    ImageBuffer::<Luma<u16>, _>::from_raw(2, 1, vec![0u16, 1]).unwrap().save(&p).unwrap();
    assert_eq!(image_io::load_mask(&p).unwrap().into_raw(), vec![0, 255]);

    // Colour masks: any channel; alpha alone is not anomalous.
    let p = dir.path().join("mrgba.png");
    ImageBuffer::<Rgba<u8>, _>::from_raw(3, 1, vec![0, 0, 3, 255, 0, 0, 0, 255, 0, 0, 0, 0]).unwrap().save(&p).unwrap();
    assert_eq!(image_io::load_mask(&p).unwrap().into_raw(), vec![255, 0, 0]);
}

#[test]
fn mask_size_must_match_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.png");
    let m = dir.path().join("img_mask.png");
    rgb(&img, 4, 3, 9);
    mask(&m, 4, 4);
    let e = image_io::load_pair(&img, Some(&m)).unwrap_err();
    assert!(matches!(e, ImageError::MaskSize { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("img.png") && text.contains("img_mask.png"), "{text}");
    assert!(text.contains("4x4") && text.contains("4x3"), "{text}");

    mask(&m, 4, 3);
    let (rgb8, mask8) = image_io::load_pair(&img, Some(&m)).unwrap();
    assert_eq!(rgb8.dimensions(), (4, 3));
    assert_eq!(mask8.unwrap().get_pixel(0, 0).0, [255]);
    assert!(image_io::check_mask_size(&img, (4, 3), &m, (4, 3)).is_ok());
}

// ---------------------------------------------------------------- formats

#[test]
fn format_and_split_names() {
    for f in Format::ALL {
        assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
    }
    assert_eq!("MVTec_AD".parse::<Format>().unwrap(), Format::Mvtec);
    let e = "kitti".parse::<Format>().unwrap_err();
    assert!(e.to_string().contains("kitti") && e.to_string().contains("meta-json"));
    assert_eq!(Split::default(), Split::Test);
    assert_eq!("train".parse::<Split>().unwrap(), Split::Train);
    assert!("val".parse::<Split>().is_err());
}

/// bottle: good x2, broken (masks), contamination (no ground_truth dir); cable: good, cut.
fn mvtec_tree(root: &Path) {
    rgb(&root.join("bottle/train/good/000.png"), 4, 4, 1);
    rgb(&root.join("bottle/train/good/001.png"), 4, 4, 2);
    rgb(&root.join("bottle/test/good/001.png"), 4, 4, 3);
    rgb(&root.join("bottle/test/good/000.png"), 4, 4, 4);
    rgb(&root.join("bottle/test/broken/000.png"), 4, 4, 5);
    mask(&root.join("bottle/ground_truth/broken/000_mask.png"), 4, 4);
    rgb(&root.join("bottle/test/contamination/000.png"), 4, 4, 6);
    rgb(&root.join("cable/train/good/000.png"), 4, 4, 7);
    rgb(&root.join("cable/test/good/000.png"), 4, 4, 8);
    rgb(&root.join("cable/test/cut/000.png"), 4, 4, 9);
    mask(&root.join("cable/ground_truth/cut/000_mask.png"), 4, 4);
    write(&root.join("license.txt"), b"not a category");
    write(&root.join("bottle/test/good/.DS_Store"), b"junk");
    write(&root.join("bottle/test/good/notes.txt"), b"junk");
}

#[test]
fn mvtec_and_mpdd_test_split() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_tree(dir.path());
    for format in [Format::Mvtec, Format::Mpdd] {
        let ds = Dataset::open(dir.path(), format, Split::Test, None).unwrap();
        assert_eq!(ds.categories(), cats(&["bottle", "cable"]));
        assert_eq!(
            names(&ds.samples),
            vec![
                "bottle:broken:1:test/broken/000.png:ground_truth/broken/000_mask.png",
                "bottle:contamination:1:test/contamination/000.png:",
                "bottle:good:0:test/good/000.png:",
                "bottle:good:0:test/good/001.png:",
                "cable:cut:1:test/cut/000.png:ground_truth/cut/000_mask.png",
                "cable:good:0:test/good/000.png:",
            ]
        );
        assert_eq!(ds.samples_of("cable").count(), 2);
    }
}

#[test]
fn mvtec_train_split_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_tree(dir.path());
    let ds = Dataset::open(dir.path(), Format::Mvtec, Split::Train, Some(&cats(&["bottle"]))).unwrap();
    assert_eq!(names(&ds.samples), vec!["bottle:good:0:train/good/000.png:", "bottle:good:0:train/good/001.png:"]);
}

#[test]
fn unknown_category_lists_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_tree(dir.path());
    let e = Dataset::open(dir.path(), Format::Mvtec, Split::Test, Some(&cats(&["bottle", "carpet"]))).unwrap_err();
    assert!(matches!(e, DatasetError::UnknownCategories { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("carpet") && text.contains("bottle, cable"), "{text}");
}

#[test]
fn empty_category_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_tree(dir.path());
    fs::create_dir_all(dir.path().join("zipper/test/good")).unwrap();
    let e = Dataset::open(dir.path(), Format::Mvtec, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::EmptyCategory { .. }), "{e:?}");
    assert!(e.to_string().contains("zipper"), "{e}");
    // The other categories still open on their own.
    Dataset::open(dir.path(), Format::Mvtec, Split::Test, Some(&cats(&["cable"]))).unwrap();
}

#[test]
fn missing_mask_in_existing_mask_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    mvtec_tree(dir.path());
    rgb(&dir.path().join("bottle/test/broken/001.png"), 4, 4, 5);
    let e = Dataset::open(dir.path(), Format::Mvtec, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::MissingMask { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("001.png") && text.contains("001_mask.png"), "{text}");
}

#[test]
fn missing_root_and_no_categories() {
    let dir = tempfile::tempdir().unwrap();
    let e = Dataset::open(&dir.path().join("absent"), Format::Mvtec, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::RootMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("absent"));
    fs::create_dir(dir.path().join("random")).unwrap();
    for format in Format::ALL {
        let e = Dataset::open(dir.path(), format, Split::Test, None).unwrap_err();
        let ok = matches!(e, DatasetError::NoCategories { .. } | DatasetError::Io { .. });
        assert!(ok, "{format}: {e:?}");
    }
}

const VISA_CSV: &str = "object,split,label,image,mask\r
candle,train,normal,candle/Data/Images/Normal/0001.JPG,\r
candle,test,normal,candle/Data/Images/Normal/0000.JPG,\r
candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\r
\"pcb1\",test,anomaly,\"pcb1/Data/Images/Anomaly/000.JPG\",\r
pcb1,test,normal,pcb1/Data/Images/Normal/0000.JPG,\r
";

fn visa_tree(root: &Path) {
    write(&root.join("split_csv/1cls.csv"), VISA_CSV.as_bytes());
    for p in [
        "candle/Data/Images/Normal/0000.JPG",
        "candle/Data/Images/Normal/0001.JPG",
        "candle/Data/Images/Anomaly/000.JPG",
        "pcb1/Data/Images/Anomaly/000.JPG",
        "pcb1/Data/Images/Normal/0000.JPG",
    ] {
        write(&root.join(p), b"not decoded by the reader");
    }
    mask(&root.join("candle/Data/Masks/Anomaly/000.png"), 4, 4);
}

#[test]
fn visa_csv() {
    let dir = tempfile::tempdir().unwrap();
    visa_tree(dir.path());
    let ds = Dataset::open(dir.path(), Format::Visa, Split::Test, None).unwrap();
    assert_eq!(
        names(&ds.samples),
        vec![
            "candle:anomaly:1:Images/Anomaly/000.JPG:Masks/Anomaly/000.png",
            "candle:good:0:Images/Normal/0000.JPG:",
            "pcb1:anomaly:1:Images/Anomaly/000.JPG:",
            "pcb1:good:0:Images/Normal/0000.JPG:",
        ]
    );
    let train = Dataset::open(dir.path(), Format::Visa, Split::Train, Some(&cats(&["candle"]))).unwrap();
    assert_eq!(names(&train.samples), vec!["candle:good:0:Images/Normal/0001.JPG:"]);
    // pcb1 has no train rows.
    let e = Dataset::open(dir.path(), Format::Visa, Split::Train, None).unwrap_err();
    assert!(matches!(e, DatasetError::EmptyCategory { .. }), "{e:?}");
}

#[test]
fn visa_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Dataset::open(dir.path(), Format::Visa, Split::Test, None).unwrap_err();
    assert!(e.to_string().contains("1cls.csv"), "{e}");

    visa_tree(dir.path());
    fs::remove_file(dir.path().join("candle/Data/Masks/Anomaly/000.png")).unwrap();
    let e = Dataset::open(dir.path(), Format::Visa, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::MissingListedMask { .. }), "{e:?}");
    assert!(e.to_string().contains("Masks/Anomaly/000.png") && e.to_string().contains("1cls.csv"));

    fs::remove_file(dir.path().join("pcb1/Data/Images/Normal/0000.JPG")).unwrap();
    write(&dir.path().join("candle/Data/Masks/Anomaly/000.png"), b"x");
    let e = Dataset::open(dir.path(), Format::Visa, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::MissingImage { .. }), "{e:?}");

    let csv = dir.path().join("split_csv/1cls.csv");
    write(&csv, b"object,split,label,image,mask\ncandle,test,weird,a.png,\n");
    let e = Dataset::open(dir.path(), Format::Visa, Split::Test, None).unwrap_err();
    assert!(e.to_string().contains("1cls.csv:2") && e.to_string().contains("weird"), "{e}");

    write(&csv, b"object,split,image,mask\n");
    let e = Dataset::open(dir.path(), Format::Visa, Split::Test, None).unwrap_err();
    assert!(e.to_string().contains("label"), "{e}");
}

fn meta_tree(root: &Path, meta: &str) {
    write(&root.join("meta.json"), meta.as_bytes());
    for p in ["screw/test/good/000.png", "screw/test/thread/000.png", "screw/test/thread/001.png"] {
        rgb(&root.join(p), 4, 4, 3);
    }
    mask(&root.join("screw/ground_truth/thread/000_mask.png"), 4, 4);
}

const META: &str = r#"{"train": {}, "test": {"screw": [
  {"img_path": "screw/test/thread/000.png", "mask_path": "screw/ground_truth/thread/000_mask.png",
   "cls_name": "screw", "specie_name": "thread", "anomaly": 1},
  {"img_path": "screw/test/good/000.png", "mask_path": "", "cls_name": "screw",
   "specie_name": "good", "anomaly": 0},
  {"img_path": "screw/test/thread/001.png", "mask_path": "", "cls_name": "screw",
   "specie_name": "", "anomaly": 1}
]}}"#;

#[test]
fn meta_json() {
    let dir = tempfile::tempdir().unwrap();
    meta_tree(dir.path(), META);
    let ds = Dataset::open(dir.path(), Format::MetaJson, Split::Test, None).unwrap();
    assert_eq!(
        names(&ds.samples),
        vec![
            "screw:good:0:test/good/000.png:",
            "screw:thread:1:test/thread/000.png:ground_truth/thread/000_mask.png",
            "screw:anomaly:1:test/thread/001.png:",
        ]
    );
    let e = Dataset::open(dir.path(), Format::MetaJson, Split::Train, None).unwrap_err();
    assert!(matches!(e, DatasetError::EmptyCategory { .. }), "{e:?}");
}

#[test]
fn meta_json_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    meta_tree(dir.path(), &META.replace("000_mask.png", "404_mask.png"));
    let e = Dataset::open(dir.path(), Format::MetaJson, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::MissingListedMask { .. }), "{e:?}");
    assert!(e.to_string().contains("404_mask.png") && e.to_string().contains("meta.json"));

    meta_tree(dir.path(), "{\"test\": {\"screw\": [");
    let e = Dataset::open(dir.path(), Format::MetaJson, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::Json { .. }), "{e:?}");
    assert!(e.to_string().contains("meta.json"));

    meta_tree(dir.path(), r#"{"test": {"screw": [{"img_path": "screw/test/good/000.png"}]}}"#);
    let e = Dataset::open(dir.path(), Format::MetaJson, Split::Test, None).unwrap_err();
    assert!(e.to_string().contains("test.screw[0].anomaly"), "{e}");

    meta_tree(dir.path(), r#"{"test": {"screw": []}}"#);
    let e = Dataset::open(dir.path(), Format::MetaJson, Split::Train, None).unwrap_err();
    assert!(e.to_string().contains("no \"train\" split"), "{e}");
}

#[test]
fn btad_masks_match_by_stem() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    rgb(&r.join("01/train/ok/0000.bmp"), 4, 4, 1);
    rgb(&r.join("01/test/ok/0000.bmp"), 4, 4, 2);
    rgb(&r.join("01/test/ko/0000.bmp"), 4, 4, 3);
    mask(&r.join("01/ground_truth/ko/0000.png"), 4, 4);
    rgb(&r.join("02/train/ok/0000.png"), 4, 4, 1);
    rgb(&r.join("02/test/ok/0000.png"), 4, 4, 2);
    rgb(&r.join("02/test/ko/0001.png"), 4, 4, 3);
    mask(&r.join("02/ground_truth/ko/0001.png"), 4, 4);
    let ds = Dataset::open(r, Format::Btad, Split::Test, None).unwrap();
    assert_eq!(
        names(&ds.samples),
        vec![
            "01:anomaly:1:test/ko/0000.bmp:ground_truth/ko/0000.png",
            "01:good:0:test/ok/0000.bmp:",
            "02:anomaly:1:test/ko/0001.png:ground_truth/ko/0001.png",
            "02:good:0:test/ok/0000.png:",
        ]
    );
    let train = Dataset::open(r, Format::Btad, Split::Train, None).unwrap();
    assert_eq!(train.samples.len(), 2);
    assert!(train.samples.iter().all(|s| !s.anomalous));

    rgb(&r.join("02/test/ko/0002.png"), 4, 4, 3);
    let e = Dataset::open(r, Format::Btad, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::MissingMask { .. }), "{e:?}");
    assert!(e.to_string().contains("0002.png"));
}

#[test]
fn folder_single_category() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("widget");
    rgb(&root.join("good/a.png"), 4, 4, 1);
    rgb(&root.join("good/b.jpg"), 4, 4, 2);
    rgb(&root.join("bad/c.png"), 4, 4, 3);
    rgb(&root.join("bad/d.png"), 4, 4, 4);
    mask(&root.join("masks/c.png"), 4, 4);
    mask(&root.join("masks/d_mask.png"), 4, 4);
    let ds = Dataset::open(&root, Format::Folder, Split::Test, None).unwrap();
    assert_eq!(
        names(&ds.samples),
        vec![
            "widget:anomaly:1:widget/bad/c.png:widget/masks/c.png",
            "widget:anomaly:1:widget/bad/d.png:widget/masks/d_mask.png",
            "widget:good:0:widget/good/a.png:",
            "widget:good:0:widget/good/b.jpg:",
        ]
    );
    let train = Dataset::open(&root, Format::Folder, Split::Train, None).unwrap();
    assert_eq!(train.samples.len(), 2);

    fs::remove_file(root.join("masks/d_mask.png")).unwrap();
    let e = Dataset::open(&root, Format::Folder, Split::Test, None).unwrap_err();
    assert!(matches!(e, DatasetError::MissingMask { .. }), "{e:?}");
    assert!(e.to_string().contains("d.png"));

    // Without a masks directory the bad images are image-level only.
    fs::remove_dir_all(root.join("masks")).unwrap();
    let ds = Dataset::open(&root, Format::Folder, Split::Test, None).unwrap();
    assert!(ds.samples.iter().all(|s| s.mask.is_none()));
    assert_eq!(ds.samples.iter().filter(|s| s.anomalous).count(), 2);
}

#[test]
fn folder_several_categories() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    rgb(&r.join("b/good/1.png"), 4, 4, 1);
    rgb(&r.join("b/bad/2.png"), 4, 4, 1);
    rgb(&r.join("a/good/1.png"), 4, 4, 1);
    fs::create_dir_all(r.join("not_a_category/other")).unwrap();
    let ds = Dataset::open(r, Format::Folder, Split::Test, None).unwrap();
    assert_eq!(ds.categories(), cats(&["a", "b"]));
    assert_eq!(ds.samples.len(), 3);
    let e = Dataset::open(r, Format::Folder, Split::Test, Some(&cats(&["c"]))).unwrap_err();
    assert!(e.to_string().contains("a, b"), "{e}");
}

#[test]
fn listed_paths_are_what_image_io_reads() {
    // End to end: a listed sample decodes, and its mask matches its size.
    let dir = tempfile::tempdir().unwrap();
    mvtec_tree(dir.path());
    let ds = Dataset::open(dir.path(), Format::Mvtec, Split::Test, None).unwrap();
    for s in &ds.samples {
        let (img, m) = image_io::load_pair(&s.image, s.mask.as_deref()).unwrap();
        assert_eq!(img.dimensions(), (4, 4));
        assert_eq!(m.is_some(), s.mask.is_some());
    }
    let _: PathBuf = ds.root.clone();
}

#[test]
fn truncated_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.jpg");
    let mut img = RgbImage::new(64, 64);
    for (x, y, px) in img.enumerate_pixels_mut() {
        *px = Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, (x ^ y) as u8]);
    }
    img.save(&full).unwrap();
    assert_eq!(image_io::load_rgb8(&full).unwrap().dimensions(), (64, 64));
    let bytes = fs::read(&full).unwrap();
    // Trailing bytes after the end marker are tolerated.
    let padded = dir.path().join("padded.jpg");
    write(&padded, &[&bytes[..], &[0u8; 16]].concat());
    assert!(image_io::load_rgb8(&padded).is_ok());
    for keep in [bytes.len() / 2, 200, 20] {
        let p = dir.path().join(format!("cut{keep}.jpg"));
        write(&p, &bytes[..keep]);
        let e = image_io::load_rgb8(&p).unwrap_err();
        assert!(matches!(e, ImageError::Truncated { .. } | ImageError::Corrupt { .. }), "{keep}: {e:?}");
        assert!(e.to_string().contains(&format!("cut{keep}.jpg")));
    }
}

#[test]
fn formats_are_detected_from_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    mvtec_tree(&r.join("mvtec"));
    visa_tree(&r.join("visa"));
    meta_tree(&r.join("meta"), META);
    rgb(&r.join("btad/01/test/ko/0000.bmp"), 4, 4, 1);
    rgb(&r.join("single/good/a.png"), 4, 4, 1);
    rgb(&r.join("multi/cat/bad/a.png"), 4, 4, 1);
    fs::create_dir_all(r.join("nothing/here")).unwrap();
    let detect = |name: &str| Format::detect(&r.join(name));
    assert_eq!(detect("mvtec"), Some(Format::Mvtec));
    assert_eq!(detect("visa"), Some(Format::Visa));
    assert_eq!(detect("meta"), Some(Format::MetaJson));
    assert_eq!(detect("btad"), Some(Format::Btad));
    assert_eq!(detect("single"), Some(Format::Folder));
    assert_eq!(detect("multi"), Some(Format::Folder));
    assert_eq!(detect("nothing"), None);
    assert_eq!(detect("absent"), None);
}
