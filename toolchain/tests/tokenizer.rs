//! The CLIP tokenizer against reference ids from Python (`tests/fixtures/clip_tokens.json`)
//! and OpenAI's vocabulary (`models/bpe_simple_vocab_16e6.txt.gz`).

use std::io::Write;
use std::path::{Path, PathBuf};

use afr_toolchain::clip::tokenizer::{clean_text, Tokenizer, TokenizerError, CONTEXT_LENGTH};
use flate2::write::GzEncoder;
use serde_json::{json, Value};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bpe_path() -> PathBuf {
    repo_root().join("models/bpe_simple_vocab_16e6.txt.gz")
}

fn load_bpe() -> Tokenizer {
    let path = bpe_path();
    Tokenizer::from_bpe_gz(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

struct Case {
    text: String,
    /// What OpenAI's original tokenizer gives (see [`openai_reference`]).
    expected: Vec<u32>,
}

/// The reference is OpenAI's original `SimpleTokenizer`. The fixture's `ids` (Hugging Face's
/// slow tokenizer) differ from it only in skipping OpenAI's `html.unescape`; its
/// `open_clip_ids` differ from it only in spelling the specials `<start_of_text>` and
/// `<end_of_text>`, so text holding `<|startoftext|>` or `<|endoftext|>` is not special there.
/// So: `ids` when the text holds OpenAI's specials, else `open_clip_ids` where present.
fn openai_reference(case: &Value) -> Vec<u32> {
    let text = case["text"].as_str().expect("text");
    let has_openai_specials = text.contains("<|startoftext|>") || text.contains("<|endoftext|>");
    match case.get("open_clip_ids") {
        Some(open_clip) if !has_openai_specials => ids_of(open_clip),
        _ => ids_of(&case["ids"]),
    }
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids are a list").iter().map(|x| x.as_u64().expect("an id is an integer") as u32).collect()
}

fn load_cases() -> (usize, Vec<Case>) {
    let path = repo_root().join("tests/fixtures/clip_tokens.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text).expect("clip_tokens.json is JSON");
    let context_length = root["context_length"].as_u64().expect("context_length") as usize;
    let cases = root["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case { text: c["text"].as_str().expect("text").to_string(), expected: openai_reference(c) })
        .collect();
    (context_length, cases)
}

#[test]
fn vocabulary_shape() {
    let tok = load_bpe();
    assert_eq!(tok.vocab_size(), 49408);
    assert_eq!(tok.sot(), 49406);
    assert_eq!(tok.eot(), 49407);
    // Byte ids follow bytes_to_unicode's order: '!' is 0, 'a</w>' is 256 + 64.
    assert_eq!(tok.token_id("!"), Some(0));
    assert_eq!(tok.token_id("a</w>"), Some(256 + 64));
}

#[test]
fn fixture_cases_match_reference_ids() {
    let tok = load_bpe();
    let (context_length, cases) = load_cases();
    assert_eq!(context_length, CONTEXT_LENGTH);
    assert!(!cases.is_empty());
    let mut matched = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let got = tok.tokenize(&case.text, context_length);
        if got == case.expected {
            matched += 1;
        } else {
            failures.push(format!("{:?}\n   expected {:?}\n   got      {:?}", case.text, case.expected, got));
        }
    }
    eprintln!("{matched} of {} cases match exactly", cases.len());
    assert!(failures.is_empty(), "mismatched cases:\n{}", failures.join("\n"));
}

/// A `tokenizer.json` written here from the merges file, with the merges as "a b" strings or
/// as [a, b] pairs, optionally gzipped.
fn write_tokenizer_json(name: &str, pairs_as_lists: bool, gzip: bool) -> PathBuf {
    let raw = {
        let mut text = String::new();
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(bpe_path()).unwrap());
        std::io::Read::read_to_string(&mut gz, &mut text).unwrap();
        text
    };
    let merges: Vec<(String, String)> = raw
        .split('\n')
        .skip(1)
        .take(48894)
        .map(|l| {
            let mut it = l.split_whitespace();
            (it.next().unwrap().to_string(), it.next().unwrap().to_string())
        })
        .collect();
    let mut order: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let printable = order.clone();
    let mut chars: Vec<char> = order.iter().map(|&b| char::from_u32(b).unwrap()).collect();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            order.push(b);
            chars.push(char::from_u32(256 + n).unwrap());
            n += 1;
        }
    }
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    tokens.extend(chars.iter().map(|c| format!("{c}</w>")));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    let vocab: serde_json::Map<String, Value> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let merges: Vec<Value> =
        merges.iter().map(|(a, b)| if pairs_as_lists { json!([a, b]) } else { json!(format!("{a} {b}")) }).collect();
    let doc = json!({
        "added_tokens": [
            {"id": 49406, "content": "<|startoftext|>", "special": true},
            {"id": 49407, "content": "<|endoftext|>", "special": true}
        ],
        "model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": vocab, "merges": merges}
    });
    let path = scratch(name);
    let bytes = serde_json::to_vec(&doc).unwrap();
    if gzip {
        let mut enc = GzEncoder::new(std::fs::File::create(&path).unwrap(), Default::default());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(&path, bytes).unwrap();
    }
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("afr-tokenizer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_same_ids(a: &Tokenizer, b: &Tokenizer, what: &str) {
    let (context_length, cases) = load_cases();
    assert_eq!(a.vocab_size(), b.vocab_size(), "{what}: vocab size");
    for case in &cases {
        assert_eq!(
            a.tokenize(&case.text, context_length),
            b.tokenize(&case.text, context_length),
            "{what}: {:?}",
            case.text
        );
    }
}

#[test]
fn tokenizer_json_gives_the_same_ids_as_the_merges_file() {
    let bpe = load_bpe();
    let strings = write_tokenizer_json("strings.json", false, false);
    let lists = write_tokenizer_json("lists.json.gz", true, true);
    let from_strings = Tokenizer::from_tokenizer_json(&strings).unwrap();
    let from_lists = Tokenizer::from_file(&lists).unwrap();
    assert_same_ids(&bpe, &from_strings, "json with \"a b\" merges");
    assert_same_ids(&bpe, &from_lists, "gzipped json with [a, b] merges");
    assert_eq!(from_strings.sot(), 49406);
    assert_eq!(from_lists.eot(), 49407);
    // from_file picks the merges format by content, too.
    assert_same_ids(&bpe, &Tokenizer::from_file(bpe_path()).unwrap(), "from_file on the .gz");

    // Hugging Face's own tokenizer.json for CLIP, where the fixtures include it.
    let hf = repo_root().join("tests/fixtures/clip_tokenizer.json.gz");
    if hf.exists() {
        let from_hf = Tokenizer::from_tokenizer_json(&hf).unwrap();
        assert_same_ids(&bpe, &from_hf, "Hugging Face tokenizer.json");
    } else {
        eprintln!("{} absent: compared only the generated tokenizer.json", hf.display());
    }
}

#[test]
fn truncation_keeps_the_end_token_last() {
    let tok = load_bpe();
    let long = "a photo of a damaged object ".repeat(40);
    let full = tok.encode(&long);
    assert!(full.len() > 200);
    let ids = tok.tokenize(&long, 77);
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], tok.sot());
    assert_eq!(ids[76], tok.eot());
    assert_eq!(&ids[1..76], &full[..75]);
    assert_eq!(tok.tokenize_padded(&long, 77), ids);

    let short = tok.tokenize("a photo of a bottle", 77);
    let padded = tok.tokenize_padded("a photo of a bottle", 77);
    assert_eq!(padded.len(), 77);
    assert_eq!(&padded[..short.len()], &short[..]);
    assert_eq!(*short.last().unwrap(), tok.eot());
    assert!(padded[short.len()..].iter().all(|&id| id == 0));
    assert_eq!(tok.tokenize("anything", 1), vec![tok.eot()]);
    assert!(tok.tokenize("anything", 0).is_empty());
}

#[test]
fn encode_has_no_special_tokens_and_caches_consistently() {
    let tok = load_bpe();
    let once = tok.encode("a photo of a normal object");
    assert!(!once.contains(&tok.sot()) && !once.contains(&tok.eot()));
    assert_eq!(once.len(), 6);
    // Second call is served from the word cache.
    assert_eq!(tok.encode("a photo of a normal object"), once);
    assert_eq!(tok.tokenize("a photo of a normal object", 77)[1..7], once[..]);
}

fn expect_error_naming(path: &Path, result: Result<Tokenizer, TokenizerError>) -> TokenizerError {
    let err = result.expect_err("a bad file must not load");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "error does not name {}: {message}", path.display());
    err
}

#[test]
fn bad_files_give_errors_naming_the_path() {
    let missing = scratch("does-not-exist.txt.gz");
    let err = expect_error_naming(&missing, Tokenizer::from_bpe_gz(&missing));
    assert!(matches!(err, TokenizerError::Io { .. }), "{err}");
    expect_error_naming(&missing, Tokenizer::from_file(&missing));

    let good = std::fs::read(bpe_path()).unwrap();
    let truncated = scratch("truncated.txt.gz");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let err = expect_error_naming(&truncated, Tokenizer::from_bpe_gz(&truncated));
    assert!(matches!(err, TokenizerError::Gzip { .. }), "{err}");

    let binary = scratch("garbage.bin");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80, 0x81, 0x1f]).unwrap();
    let err = expect_error_naming(&binary, Tokenizer::from_file(&binary));
    assert!(matches!(err, TokenizerError::NotUtf8 { .. }), "{err}");

    let short = scratch("short.txt");
    std::fs::write(&short, "#version: 0.2\ni n\nt h\n").unwrap();
    let err = expect_error_naming(&short, Tokenizer::from_bpe_gz(&short));
    assert!(matches!(err, TokenizerError::TooFewMerges { found: 3, .. }), "{err}");

    let bad_merge = scratch("bad-merge.txt");
    let mut text = String::from("#version: 0.2\ni n\nthree symbols here\n");
    text.push_str(&"a b\n".repeat(48894));
    std::fs::write(&bad_merge, text).unwrap();
    let err = expect_error_naming(&bad_merge, Tokenizer::from_bpe_gz(&bad_merge));
    assert!(matches!(&err, TokenizerError::BadMerge { location, .. } if location == "line 3"), "{err}");

    let not_json = scratch("broken.json");
    std::fs::write(&not_json, "{\"model\": {\"vocab\": ").unwrap();
    let err = expect_error_naming(&not_json, Tokenizer::from_tokenizer_json(&not_json));
    assert!(matches!(err, TokenizerError::Json { .. }), "{err}");

    let no_merges = scratch("no-merges.json");
    std::fs::write(&no_merges, r#"{"model": {"type": "BPE", "vocab": {"a": 0}}}"#).unwrap();
    let err = expect_error_naming(&no_merges, Tokenizer::from_file(&no_merges));
    assert!(matches!(err, TokenizerError::BadVocabulary { .. }), "{err}");

    let bad_pair = scratch("bad-pair.json");
    std::fs::write(&bad_pair, r#"{"model": {"vocab": {"a": 0}, "merges": [["a"]]}}"#).unwrap();
    let err = expect_error_naming(&bad_pair, Tokenizer::from_tokenizer_json(&bad_pair));
    assert!(err.to_string().contains("model.merges[0]"), "{err}");

    // A gzip bomb: 65 MiB of zeros in a few kilobytes is refused, not inflated without bound.
    let bomb = scratch("bomb.txt.gz");
    let mut enc = GzEncoder::new(std::fs::File::create(&bomb).unwrap(), Default::default());
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..65 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap();
    let err = expect_error_naming(&bomb, Tokenizer::from_bpe_gz(&bomb));
    assert!(matches!(err, TokenizerError::TooLarge { .. }), "{err}");
}

#[test]
fn text_cleaning_follows_openai() {
    // html.unescape twice after ftfy: "&amp;lt;" ends as "<".
    assert_eq!(clean_text("fish &amp;amp; chips &amp;lt;3"), "fish & chips <3");
    // ftfy leaves entities alone in a line with '<'; OpenAI's html.unescape still decodes them.
    assert_eq!(clean_text("<b>A &amp; B</b>"), "<b>a & b</b>");
    // Legacy entities decode without their semicolon, and as a prefix.
    assert_eq!(clean_text("&copy 2024 &ampx"), "\u{a9} 2024 &x");
    assert_eq!(clean_text("&EACUTE;t&eacute; &#x263a; &#128;"), "\u{e9}t\u{e9} \u{263a} \u{20ac}");
    // NFC, fullwidth forms, ligatures, curly quotes, whitespace collapse, lowercase.
    assert_eq!(clean_text("Cafe\u{301}"), "caf\u{e9}");
    assert_eq!(clean_text("\u{ff21}\u{ff22}\u{3000}\u{ff11}"), "ab 1");
    assert_eq!(clean_text("the \u{fb01}rst \u{201c}x\u{201d} it\u{2019}s"), "the first \"x\" it's");
    assert_eq!(clean_text("  a\t\tb\r\n\u{a0}c\u{1b}[31m  "), "a b c");
    // Whole-line mojibake is repaired; real accented text is not.
    assert_eq!(clean_text("caf\u{c3}\u{a9}"), "caf\u{e9}");
    assert_eq!(clean_text("CAF\u{c9}\u{2026}"), "caf\u{e9}\u{2026}");
}
