//! The CLIP byte-level BPE tokenizer, id-for-id with OpenAI's `SimpleTokenizer` and Hugging
//! Face's slow `CLIPTokenizer` (with ftfy installed).
//!
//! It loads either OpenAI's merges file (`bpe_simple_vocab_16e6.txt.gz`) or a Hugging Face
//! `tokenizer.json`, plain or gzip-compressed. Text goes through the same cleaning as OpenAI's
//! (see [`clean_text`]), the pre-tokenisation regex, the byte-to-unicode mapping and BPE with
//! the `</w>` end-of-word marker.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use flate2::read::MultiGzDecoder;
use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// The largest vocabulary we read, after decompression. OpenAI's merges are 1.3 MiB, a CLIP
/// `tokenizer.json` about 3.5 MiB; anything far beyond that is not a CLIP vocabulary.
pub const MAX_VOCAB_BYTES: u64 = 64 * 1024 * 1024;

/// Merges CLIP uses from OpenAI's file: 49152 tokens less the 256 bytes and the 2 specials.
pub const CLIP_MERGES: usize = 49152 - 256 - 2;

/// CLIP's text context length.
pub const CONTEXT_LENGTH: usize = 77;

const START_OF_TEXT: &str = "<|startoftext|>";
const END_OF_TEXT: &str = "<|endoftext|>";
const END_OF_WORD: &str = "</w>";

/// OpenAI's pre-tokenisation pattern. Text is lowercased first; the flag is kept as OpenAI has it.
const PATTERN: &str =
    r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Words cached before the cache is emptied: keeps memory bounded on unbounded input.
const CACHE_LIMIT: usize = 1 << 16;

/// Why a vocabulary could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read tokenizer file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("tokenizer file {} is not a valid gzip stream: {source}", path.display())]
    Gzip { path: PathBuf, source: std::io::Error },
    #[error("tokenizer file {} holds more than {limit} bytes (decompressed); refusing to read it", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("tokenizer file {} is not UTF-8 text: {source}", path.display())]
    NotUtf8 { path: PathBuf, source: std::string::FromUtf8Error },
    #[error("tokenizer file {}: {location}: malformed merge {text:?} (expected two symbols)", path.display())]
    BadMerge {
        path: PathBuf,
        /// `line N` (1-based) in a merges file, `model.merges[N]` in a tokenizer.json.
        location: String,
        text: String,
    },
    #[error("tokenizer file {} has {found} merges; CLIP needs {needed}", path.display())]
    TooFewMerges { path: PathBuf, found: usize, needed: usize },
    #[error("tokenizer file {} is not valid JSON: {source}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("tokenizer file {}: {problem}", path.display())]
    BadVocabulary { path: PathBuf, problem: String },
}

/// A loaded CLIP tokenizer. Encoding takes `&self`; the word cache sits behind a mutex.
pub struct Tokenizer {
    /// Token string -> id.
    vocab: HashMap<String, u32>,
    /// Adjacent symbol pair -> (merge rank, id of the merged symbol).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Vocabulary id of each byte's unicode stand-in, without and with `</w>`.
    byte_ids: [u32; 256],
    byte_end_ids: [u32; 256],
    sot: u32,
    eot: u32,
    vocab_size: usize,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("merges", &self.merges.len())
            .field("sot", &self.sot)
            .field("eot", &self.eot)
            .finish()
    }
}

impl Tokenizer {
    /// OpenAI's vocabulary as shipped in `models/bpe_simple_vocab_16e6.txt.gz`,
    /// compiled into the binary so that the tools work from anywhere.
    pub fn openai() -> Self {
        const BPE: &[u8] = include_bytes!("../../../models/bpe_simple_vocab_16e6.txt.gz");
        let path = Path::new("models/bpe_simple_vocab_16e6.txt.gz (built in)");
        let text = decode_text(path, BPE.to_vec()).expect("the built-in vocabulary decodes");
        Self::from_merges_text(path, &text).expect("the built-in vocabulary is valid")
    }

    /// Loads OpenAI's merges file (`bpe_simple_vocab_16e6.txt.gz`; a plain-text copy works too).
    /// As OpenAI does: line 0 is a header, lines 1..=48894 are the merges; the vocabulary is the
    /// 256 byte characters, the same with `</w>`, each merge joined, then the two specials.
    pub fn from_bpe_gz(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Self::from_merges_text(path, &text)
    }

    /// Loads a Hugging Face `tokenizer.json` (plain or gzip-compressed): `model.vocab` and
    /// `model.merges` (a list of `"a b"` strings or of `[a, b]` pairs).
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Self::from_json_text(path, &text)
    }

    /// Loads either format, chosen by content: a JSON object is a `tokenizer.json`, anything
    /// else is OpenAI's merges file. Gzip is detected by its magic bytes in both cases.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        if text.trim_start().starts_with('{') {
            Self::from_json_text(path, &text)
        } else {
            Self::from_merges_text(path, &text)
        }
    }

    fn from_merges_text(path: &Path, text: &str) -> Result<Self, TokenizerError> {
        // Python's `split('\n')[1:48895]`: the header is skipped, a short file is an error
        // rather than a silently smaller vocabulary.
        let lines: Vec<&str> = text.split('\n').skip(1).take(CLIP_MERGES).collect();
        if lines.len() < CLIP_MERGES {
            return Err(TokenizerError::TooFewMerges {
                path: path.to_path_buf(),
                found: lines.len(),
                needed: CLIP_MERGES,
            });
        }
        let mut pairs = Vec::with_capacity(CLIP_MERGES);
        for (i, line) in lines.iter().enumerate() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() != 2 {
                return Err(TokenizerError::BadMerge {
                    path: path.to_path_buf(),
                    location: format!("line {}", i + 2),
                    text: line.to_string(),
                });
            }
            pairs.push((parts[0].to_string(), parts[1].to_string()));
        }

        let mut tokens: Vec<String> = Vec::with_capacity(CLIP_MERGES + 514);
        let chars = byte_chars();
        let ordered: Vec<char> = byte_order().iter().map(|&b| chars[b as usize]).collect();
        tokens.extend(ordered.iter().map(|c| c.to_string()));
        tokens.extend(ordered.iter().map(|c| format!("{c}{END_OF_WORD}")));
        tokens.extend(pairs.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.push(START_OF_TEXT.to_string());
        tokens.push(END_OF_TEXT.to_string());
        // Later duplicates win, as in Python's dict(zip(vocab, range(len(vocab)))).
        let vocab: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        Self::build(path, vocab, &pairs, tokens.len())
    }

    fn from_json_text(path: &Path, text: &str) -> Result<Self, TokenizerError> {
        let bad = |problem: String| TokenizerError::BadVocabulary { path: path.to_path_buf(), problem };
        let root: serde_json::Value =
            serde_json::from_str(text).map_err(|source| TokenizerError::Json { path: path.to_path_buf(), source })?;
        let model = root.get("model").ok_or_else(|| bad("no \"model\" object".into()))?;
        if let Some(kind) = model.get("type").and_then(|t| t.as_str()) {
            if kind != "BPE" {
                return Err(bad(format!("model type is {kind:?}, expected \"BPE\"")));
            }
        }
        let vocab_json =
            model.get("vocab").and_then(|v| v.as_object()).ok_or_else(|| bad("no \"model.vocab\" object".into()))?;
        let mut vocab = HashMap::with_capacity(vocab_json.len());
        for (token, id) in vocab_json {
            let id = id
                .as_u64()
                .filter(|&id| id <= u32::MAX as u64)
                .ok_or_else(|| bad(format!("vocabulary id of {token:?} is not a u32: {id}")))?;
            vocab.insert(token.clone(), id as u32);
        }
        // The specials may live only in "added_tokens".
        if let Some(added) = root.get("added_tokens").and_then(|a| a.as_array()) {
            for entry in added {
                let content = entry.get("content").and_then(|c| c.as_str());
                let id = entry.get("id").and_then(|i| i.as_u64());
                if let (Some(content), Some(id)) = (content, id) {
                    if id <= u32::MAX as u64 {
                        vocab.entry(content.to_string()).or_insert(id as u32);
                    }
                }
            }
        }
        let merges_json =
            model.get("merges").and_then(|m| m.as_array()).ok_or_else(|| bad("no \"model.merges\" list".into()))?;
        let mut pairs = Vec::with_capacity(merges_json.len());
        for (i, merge) in merges_json.iter().enumerate() {
            let pair = match merge {
                serde_json::Value::String(s) => {
                    let parts: Vec<&str> = s.split(' ').collect();
                    (parts.len() == 2).then(|| (parts[0].to_string(), parts[1].to_string()))
                }
                serde_json::Value::Array(items) if items.len() == 2 => match (items[0].as_str(), items[1].as_str()) {
                    (Some(a), Some(b)) => Some((a.to_string(), b.to_string())),
                    _ => None,
                },
                _ => None,
            };
            let pair = pair.ok_or_else(|| TokenizerError::BadMerge {
                path: path.to_path_buf(),
                location: format!("model.merges[{i}]"),
                text: merge.to_string(),
            })?;
            pairs.push(pair);
        }
        let vocab_size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        Self::build(path, vocab, &pairs, vocab_size)
    }

    fn build(
        path: &Path,
        vocab: HashMap<String, u32>,
        pairs: &[(String, String)],
        vocab_size: usize,
    ) -> Result<Self, TokenizerError> {
        let bad = |problem: String| TokenizerError::BadVocabulary { path: path.to_path_buf(), problem };
        let id_of = |token: &str| {
            vocab.get(token).copied().ok_or_else(|| bad(format!("token {token:?} is not in the vocabulary")))
        };
        let chars = byte_chars();
        let mut byte_ids = [0u32; 256];
        let mut byte_end_ids = [0u32; 256];
        for b in 0..256 {
            byte_ids[b] = id_of(&chars[b].to_string())?;
            byte_end_ids[b] = id_of(&format!("{}{END_OF_WORD}", chars[b]))?;
        }
        let mut merges = HashMap::with_capacity(pairs.len());
        for (rank, (a, b)) in pairs.iter().enumerate() {
            let merged = id_of(&format!("{a}{b}"))?;
            // Later duplicates win, as in Python's dict(zip(merges, range(len(merges)))).
            merges.insert((id_of(a)?, id_of(b)?), (rank as u32, merged));
        }
        let sot = id_of(START_OF_TEXT)?;
        let eot = id_of(END_OF_TEXT)?;
        Ok(Self { vocab, merges, byte_ids, byte_end_ids, sot, eot, vocab_size, cache: Mutex::new(HashMap::new()) })
    }

    /// The start-of-text id (49406 for CLIP).
    pub fn sot(&self) -> u32 {
        self.sot
    }

    /// The end-of-text id (49407 for CLIP); the text encoder pools at its position.
    pub fn eot(&self) -> u32 {
        self.eot
    }

    /// Number of token ids (one more than the largest id): 49408 for CLIP.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of one vocabulary entry (for example `"photo</w>"`), if present.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// Token ids of `text` after cleaning, without the start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = clean_text(text);
        let mut ids = Vec::new();
        for word in pattern().find_iter(&cleaned) {
            let word = word.as_str();
            match word {
                // OpenAI's cache holds the specials verbatim, so they are never split.
                START_OF_TEXT => ids.push(self.sot),
                END_OF_TEXT => ids.push(self.eot),
                _ => self.encode_word(word, &mut ids),
            }
        }
        ids
    }

    /// `[sot] + encode(text) + [eot]`, cut to `context_length` with the end token kept last
    /// (OpenAI's `truncate=True`), not padded. A zero context gives an empty vector.
    pub fn tokenize(&self, text: &str, context_length: usize) -> Vec<u32> {
        if context_length == 0 {
            return Vec::new();
        }
        let mut ids = Vec::with_capacity(context_length);
        ids.push(self.sot);
        ids.extend(self.encode(text));
        ids.truncate(context_length - 1);
        ids.push(self.eot);
        ids
    }

    /// [`Tokenizer::tokenize`] zero-padded to exactly `context_length`, as CLIP's text encoder
    /// takes it.
    pub fn tokenize_padded(&self, text: &str, context_length: usize) -> Vec<u32> {
        let mut ids = self.tokenize(text, context_length);
        ids.resize(context_length, 0);
        ids
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(word).cloned()) {
            out.extend(ids);
            return;
        }
        let ids = self.bpe(word.as_bytes());
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(word.to_string(), ids.clone());
        }
        out.extend(ids);
    }

    /// BPE on one pre-tokenised word: start from its bytes (the last one carrying `</w>`) and
    /// repeatedly merge every occurrence of the lowest-ranked adjacent pair, left to right.
    fn bpe(&self, bytes: &[u8]) -> Vec<u32> {
        let Some((&last, rest)) = bytes.split_last() else {
            return Vec::new();
        };
        let mut word: Vec<u32> = rest.iter().map(|&b| self.byte_ids[b as usize]).collect();
        word.push(self.byte_end_ids[last as usize]);
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|w| {
                    let pair = (w[0], w[1]);
                    self.merges.get(&pair).map(|&(rank, merged)| (rank, pair, merged))
                })
                .min_by_key(|&(rank, _, _)| rank);
            let Some((_, pair, merged)) = best else { break };
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
        }
        word
    }
}

fn pattern() -> &'static Regex {
    static PAT: OnceLock<Regex> = OnceLock::new();
    PAT.get_or_init(|| Regex::new(PATTERN).expect("the CLIP pattern is a valid regex"))
}

/// Bytes in the order OpenAI's `bytes_to_unicode` lists them: the printable Latin-1 ranges
/// first, then the rest. A byte's vocabulary id is its index in this order.
fn byte_order() -> Vec<u8> {
    let mut order: Vec<u8> = (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let printable = order.clone();
    order.extend((0..=255u8).filter(|b| !printable.contains(b)));
    order
}

/// The unicode character standing in for each byte: printable Latin-1 bytes map to
/// themselves, the others to U+0100 onwards in byte order.
fn byte_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        chars[b as usize] = if printable {
            b as char
        } else {
            let c = char::from_u32(next).expect("U+0100..U+0143 are characters");
            next += 1;
            c
        };
    }
    chars
}

/// Reads a file whole, gunzipping it if it starts with the gzip magic, refusing more than
/// [`MAX_VOCAB_BYTES`] either way.
fn read_text(path: &Path) -> Result<String, TokenizerError> {
    let io = |source| TokenizerError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut raw = Vec::new();
    file.take(MAX_VOCAB_BYTES + 1).read_to_end(&mut raw).map_err(io)?;
    decode_text(path, raw)
}

/// Plain or gzip bytes to text, refusing more than `MAX_VOCAB_BYTES` either way.
fn decode_text(path: &Path, raw: Vec<u8>) -> Result<String, TokenizerError> {
    let too_large = || TokenizerError::TooLarge { path: path.to_path_buf(), limit: MAX_VOCAB_BYTES };
    if raw.len() as u64 > MAX_VOCAB_BYTES {
        return Err(too_large());
    }
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .take(MAX_VOCAB_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|source| TokenizerError::Gzip { path: path.to_path_buf(), source })?;
        if out.len() as u64 > MAX_VOCAB_BYTES {
            return Err(too_large());
        }
        out
    } else {
        raw
    };
    String::from_utf8(bytes).map_err(|source| TokenizerError::NotUtf8 { path: path.to_path_buf(), source })
}

/// OpenAI's text cleaning: `whitespace_clean(basic_clean(text)).lower()`, where `basic_clean`
/// is `html.unescape(html.unescape(ftfy.fix_text(text))).strip()`.
///
/// Of ftfy 6's `fix_text` we do the table-driven fixes, per line and repeated until stable as
/// ftfy does: HTML entities (only when the text has no `<`; see [`ftfy_unescape`]), C1
/// controls read as Windows-1252, Latin ligatures, halfwidth/fullwidth forms, curly quotes,
/// line breaks, ANSI terminal escapes, control characters, then Unicode NFC. Full ftfy
/// mojibake repair is NOT done: only a whole line of UTF-8 misread as Latin-1/Windows-1252 is
/// repaired (see [`undo_whole_mojibake`]); ftfy's badness heuristics, `replace_lossy_sequences`,
/// `decode_inconsistent_utf8` and `restore_byte_a0` are not implemented, so partly garbled
/// text may tokenise differently from Python.
pub fn clean_text(text: &str) -> String {
    let fixed = ftfy_fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    let mut out = String::with_capacity(unescaped.len());
    for word in unescaped.split(is_py_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.to_lowercase()
}

/// Python's `str.isspace`: Unicode White_Space plus the four ASCII information separators.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The subset of ftfy's `fix_text` described at [`clean_text`].
fn ftfy_fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        // ftfy's "auto" mode: once a segment shows a '<', it stops unescaping for good.
        if segment.contains('<') {
            unescape = false;
        }
        let mut current = segment.to_string();
        // ftfy loops until nothing changes; every step here shrinks or keeps the text, and
        // the bound guards against anything that would not settle.
        for _ in 0..16 {
            let next = ftfy_fix_once(&current, unescape);
            if next == current {
                break;
            }
            current = next;
        }
        out.push_str(&current);
    }
    out
}

fn ftfy_fix_once(text: &str, unescape: bool) -> String {
    let text = if unescape { ftfy_unescape(text) } else { text.to_string() };
    let text = undo_whole_mojibake(&text).unwrap_or(text);
    let text: String = text.chars().map(c1_as_windows_1252).collect();
    let mut fixed = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Latin ligatures and legacy digraphs (ftfy's `fix_latin_ligatures`).
            '\u{0132}' => fixed.push_str("IJ"),
            '\u{0133}' => fixed.push_str("ij"),
            '\u{0149}' => fixed.push_str("\u{02bc}n"),
            '\u{01f1}' => fixed.push_str("DZ"),
            '\u{01f2}' => fixed.push_str("Dz"),
            '\u{01f3}' => fixed.push_str("dz"),
            '\u{01c4}' => fixed.push_str("D\u{017d}"),
            '\u{01c5}' => fixed.push_str("D\u{017e}"),
            '\u{01c6}' => fixed.push_str("d\u{017e}"),
            '\u{01c7}' => fixed.push_str("LJ"),
            '\u{01c8}' => fixed.push_str("Lj"),
            '\u{01c9}' => fixed.push_str("lj"),
            '\u{01ca}' => fixed.push_str("NJ"),
            '\u{01cb}' => fixed.push_str("Nj"),
            '\u{01cc}' => fixed.push_str("nj"),
            '\u{fb00}' => fixed.push_str("ff"),
            '\u{fb01}' => fixed.push_str("fi"),
            '\u{fb02}' => fixed.push_str("fl"),
            '\u{fb03}' => fixed.push_str("ffi"),
            '\u{fb04}' => fixed.push_str("ffl"),
            '\u{fb05}' => fixed.push_str("\u{017f}t"),
            '\u{fb06}' => fixed.push_str("st"),
            // Character width: ideographic space and the halfwidth/fullwidth block to NFKC.
            '\u{3000}' => fixed.push(' '),
            '\u{ff01}'..='\u{ffef}' => fixed.extend(std::iter::once(c).nfkc()),
            _ => fixed.push(c),
        }
    }
    // Curly quotes, then line breaks.
    let fixed: String = fixed
        .chars()
        .map(|c| match c {
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            _ => c,
        })
        .collect();
    let fixed = fixed.replace("\r\n", "\n").replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
    let fixed = remove_terminal_escapes(&fixed);
    let fixed: String = fixed.chars().filter(|&c| !is_ftfy_control(c)).collect();
    fixed.nfc().collect()
}

/// The common case of ftfy's `fix_encoding`: a whole segment that is UTF-8 decoded as
/// Latin-1 or Windows-1252 (`cafÃ©`) is re-encoded and decoded as UTF-8. A segment is changed
/// only if every character maps back to one byte and the bytes are valid UTF-8. ftfy's
/// "badness" score is not reproduced; in its place, every two-byte sequence must start with a
/// lead that mojibake of Latin, Greek or Cyrillic text shows (`Â Ã Ä Å Î Ï Ð Ñ`), so that
/// real text such as `CAFÉ…` (bytes C9 85, valid UTF-8) is left alone. Mojibake mixed with
/// other text is not repaired.
fn undo_whole_mojibake(text: &str) -> Option<String> {
    if text.is_ascii() {
        return None;
    }
    let latin1: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
    let bytes = latin1.or_else(|| text.chars().map(windows_1252_byte).collect())?;
    let plausible_leads =
        bytes.iter().filter(|&&b| (0xC0..0xE0).contains(&b)).all(|b| matches!(b, 0xC2..=0xC5 | 0xCE..=0xD1));
    if !plausible_leads {
        return None;
    }
    let decoded = String::from_utf8(bytes).ok()?;
    (decoded != text).then_some(decoded)
}

/// The byte "sloppy" Windows-1252 encodes `c` as: its own code below U+0100 except the C1
/// range, where only the five bytes Windows-1252 leaves undefined stand for themselves.
fn windows_1252_byte(c: char) -> Option<u8> {
    let code = c as u32;
    match code {
        0x80..=0x9f => windows_1252_c1(code).is_none().then_some(code as u8),
        0..=0xff => Some(code as u8),
        _ => (0x80..=0x9f).find(|&b| windows_1252_c1(b) == Some(c)).map(|b| b as u8),
    }
}

/// ftfy's `fix_c1_controls`: a C1 control is read as the Windows-1252 character of that byte
/// (the five bytes Windows-1252 leaves undefined stay as they are).
fn c1_as_windows_1252(c: char) -> char {
    match c {
        '\u{80}'..='\u{9f}' => windows_1252_c1(c as u32).unwrap_or(c),
        _ => c,
    }
}

fn windows_1252_c1(byte: u32) -> Option<char> {
    const TABLE: [u32; 32] = [
        0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D,
        0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,
        0x017E, 0x0178,
    ];
    let code = *TABLE.get(byte.checked_sub(0x80)? as usize)?;
    (code != 0).then(|| char::from_u32(code)).flatten()
}

/// ftfy's `remove_terminal_escapes`: `ESC [ (digit | ;)* letter`.
fn remove_terminal_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("\u{1b}[") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let params = after.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(after.len());
        match after[params..].chars().next() {
            Some(c) if c.is_ascii_alphabetic() => rest = &after[params + 1..],
            _ => {
                out.push_str("\u{1b}[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// ftfy's `remove_control_chars` table.
fn is_ftfy_control(c: char) -> bool {
    matches!(c,
        '\u{00}'..='\u{08}' | '\u{0b}' | '\u{0e}'..='\u{1f}' | '\u{7f}'
        | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

/// The HTML 4 Latin-1 entities, U+00A0..=U+00FF in code point order. With amp, lt, gt, quot
/// (and the upper-case AMP, LT, GT, QUOT, COPY, REG) these are exactly the names HTML5 also
/// accepts without a semicolon.
const LATIN1_ENTITIES: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not", "shy",
    "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1", "ordm",
    "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
    "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
    "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN",
    "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc",
    "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
    "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
];

/// Entities that need their semicolon: common punctuation and typography.
const SEMICOLON_ENTITIES: [(&str, char); 27] = [
    ("apos", '\''),
    ("hellip", '\u{2026}'),
    ("mdash", '\u{2014}'),
    ("ndash", '\u{2013}'),
    ("lsquo", '\u{2018}'),
    ("rsquo", '\u{2019}'),
    ("sbquo", '\u{201a}'),
    ("ldquo", '\u{201c}'),
    ("rdquo", '\u{201d}'),
    ("bdquo", '\u{201e}'),
    ("lsaquo", '\u{2039}'),
    ("rsaquo", '\u{203a}'),
    ("bull", '\u{2022}'),
    ("trade", '\u{2122}'),
    ("euro", '\u{20ac}'),
    ("dagger", '\u{2020}'),
    ("Dagger", '\u{2021}'),
    ("permil", '\u{2030}'),
    ("prime", '\u{2032}'),
    ("minus", '\u{2212}'),
    ("larr", '\u{2190}'),
    ("rarr", '\u{2192}'),
    ("ensp", '\u{2002}'),
    ("emsp", '\u{2003}'),
    ("thinsp", '\u{2009}'),
    ("zwnj", '\u{200c}'),
    ("zwj", '\u{200d}'),
];

/// A legacy entity: one HTML5 also decodes without a semicolon (and as a prefix).
fn legacy_entity(name: &str) -> Option<char> {
    match name {
        "amp" | "AMP" => Some('&'),
        "lt" | "LT" => Some('<'),
        "gt" | "GT" => Some('>'),
        "quot" | "QUOT" => Some('"'),
        "COPY" => Some('\u{a9}'),
        "REG" => Some('\u{ae}'),
        _ => LATIN1_ENTITIES.iter().position(|&n| n == name).and_then(|i| char::from_u32(0xA0 + i as u32)),
    }
}

/// An entity written with its semicolon (the name here is without it).
fn named_entity(name: &str) -> Option<char> {
    legacy_entity(name).or_else(|| SEMICOLON_ENTITIES.iter().find(|(n, _)| *n == name).map(|&(_, c)| c))
}

/// ftfy's `unescape_html`: only `&#?[0-9A-Za-z]{1,24};` is touched; a named entity must end in
/// its semicolon, and an all-caps name of a lower-case entity decodes to the upper-case
/// character (ftfy reads `&EACUTE;` as `É`).
fn ftfy_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let body_start = usize::from(after.starts_with('#'));
        let body_len =
            after[body_start..].find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len() - body_start);
        let end = body_start + body_len;
        if (1..=24).contains(&body_len) && after[end..].starts_with(';') {
            let entity = &rest[pos..pos + 1 + end + 1];
            let name = &after[..end];
            let decoded = if body_start == 1 {
                let decoded = html_unescape(entity);
                // ftfy keeps the entity when Python decoded only part of it.
                (!decoded.contains(';')).then_some(decoded)
            } else {
                named_entity(name).map(String::from).or_else(|| {
                    let lower = name.to_ascii_lowercase();
                    (name == name.to_ascii_uppercase() && name != lower)
                        .then(|| named_entity(&lower))
                        .flatten()
                        .map(|c| c.to_uppercase().collect())
                })
            };
            match decoded {
                Some(d) => out.push_str(&d),
                None => out.push_str(entity),
            }
            rest = &after[end + 1..];
        } else {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Python's `html.unescape` for numeric references (all of them, as Python handles them) and
/// the named entities above: the HTML 4 Latin-1 set with amp, lt, gt, quot (also without the
/// semicolon and as a prefix, as HTML5 allows) and [`SEMICOLON_ENTITIES`]. Other HTML5 names
/// are left as written.
fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match unescape_reference(after) {
            Some((decoded, used)) => {
                out.push_str(&decoded);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the reference after an `&`; returns the text and the bytes consumed.
fn unescape_reference(after: &str) -> Option<(String, usize)> {
    if let Some(num) = after.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
        if len == 0 {
            return None;
        }
        let value = digits[..len]
            .chars()
            .fold(0u64, |acc, d| (acc * radix as u64 + d.to_digit(radix).unwrap_or(0) as u64).min(0x11_0000));
        let semicolon = usize::from(digits[len..].starts_with(';'));
        return Some((numeric_reference(value), skip + len + semicolon));
    }
    // Python: `[^\t\n\f <&#;]{1,32};?`, then the whole name, else its longest legacy prefix.
    let len: usize = after
        .char_indices()
        .take_while(|&(_, c)| !matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';'))
        .take(32)
        .last()
        .map(|(i, c)| i + c.len_utf8())?;
    let name = &after[..len];
    if after[len..].starts_with(';') {
        if let Some(c) = named_entity(name) {
            return Some((c.to_string(), len + 1));
        }
    } else if let Some(c) = legacy_entity(name) {
        return Some((c.to_string(), len));
    }
    let mut cuts: Vec<usize> = name.char_indices().map(|(i, _)| i).filter(|&i| i >= 2).collect();
    cuts.reverse();
    cuts.into_iter().find_map(|cut| legacy_entity(&name[..cut]).map(|c| (c.to_string(), cut)))
}

/// Python's rules for `&#N;`: Windows-1252 for the C1 range, U+FFFD for NUL, surrogates and
/// out-of-range values, nothing for the other invalid code points.
fn numeric_reference(value: u64) -> String {
    let v = value as u32;
    match v {
        0 => return '\u{fffd}'.to_string(),
        0x0d => return '\r'.to_string(),
        0x80..=0x9f => {
            return windows_1252_c1(v).unwrap_or_else(|| char::from_u32(v).unwrap_or('\u{fffd}')).to_string()
        }
        0xD800..=0xDFFF | 0x11_0000.. => return '\u{fffd}'.to_string(),
        _ => {}
    }
    let invalid = matches!(v, 0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef) || (v & 0xfffe) == 0xfffe;
    if invalid {
        String::new()
    } else {
        char::from_u32(v).map(String::from).unwrap_or_default()
    }
}
