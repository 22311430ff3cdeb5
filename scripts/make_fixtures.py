#!/usr/bin/env python3
"""Reference fixtures for afr-clip's backbone parity tests.

Every expected value here comes from an implementation nobody on the project
wrote: Hugging Face transformers (CLIP model and tokenizer), open_clip (the
OpenAI state-dict layout and the original BPE tokenizer), torchvision and timm
(ResNets). The Rust tests read the files this script writes and never need
Python.

    pip install -r scripts/requirements-fixtures.txt
    python scripts/make_fixtures.py --out tests/fixtures

The output is deterministic: seeded generators, one CPU thread, float32, and
no time stamps in any file (gzip mtime = 0).
"""

import argparse
import gzip
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

# No hub access is possible or wanted: everything is built from local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ftfy  # noqa: E402
import numpy  # noqa: E402
import open_clip  # noqa: E402
import regex  # noqa: E402
import safetensors  # noqa: E402
import timm  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import transformers  # noqa: E402
from open_clip.tokenizer import SimpleTokenizer  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, CLIPTokenizerFast  # noqa: E402

CONTEXT_LENGTH = 77
SOT_ID = 49406
EOT_ID = 49407

# Tiny CLIP: text ids live in a 1000-word vocabulary whose two top ids are the
# start / end tokens, so that the EOT id is also the argmax of every row (the
# OpenAI pooling rule) and HF's "first eos_token_id" rule must agree with it.
TINY_BOS = 998
TINY_EOS = 999
TINY_PAD = 0


def versions() -> dict:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "open_clip_torch": open_clip.__version__,
        "timm": timm.__version__,
        "safetensors": safetensors.__version__,
        "ftfy": ftfy.__version__,
        "regex": regex.__version__,
        "numpy": numpy.__version__,
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def save_tensors(tensors: dict, path: Path) -> None:
    clean = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    for k, v in clean.items():
        assert v.dtype in (torch.float32, torch.int64), f"{path.name}:{k} has dtype {v.dtype}"
    save_file(clean, str(path))


# ---------------------------------------------------------------------------
# 1. Tiny CLIP
# ---------------------------------------------------------------------------


def tiny_clip_config() -> CLIPConfig:
    text = dict(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        attention_dropout=0.0,
        projection_dim=16,
        bos_token_id=TINY_BOS,
        eos_token_id=TINY_EOS,
        pad_token_id=TINY_PAD,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=128,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_channels=3,
        image_size=32,
        patch_size=8,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        attention_dropout=0.0,
        projection_dim=16,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)


def perturb_clip_(model: CLIPModel, gen: torch.Generator) -> None:
    """Move every parameter away from its initial value, so that a loader that
    drops a LayerNorm, a bias or an embedding cannot pass by luck."""
    ln_weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name in ln_weights:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.05 * noise)
            elif name == "logit_scale":
                p.copy_(torch.tensor(math.log(1 / 0.07), dtype=torch.float32) + 0.3 * noise)
            elif name.endswith("class_embedding") or name.endswith("position_embedding.weight"):
                p.add_(0.1 * noise)
            else:
                p.add_(0.02 * noise)
    for name, p in model.named_parameters():
        same = (p.detach() == before[name]).sum().item()
        assert same == 0, f"{name}: {same} elements still at their initial value"
        assert p.dtype == torch.float32, name


def hf_to_openai(sd: dict, vision_layers: int, text_layers: int) -> dict:
    """Hugging Face CLIPModel state dict -> OpenAI / open_clip naming."""
    out = {}

    def block(hf: str, oa: str) -> None:
        out[f"{oa}.ln_1.weight"] = sd[f"{hf}.layer_norm1.weight"]
        out[f"{oa}.ln_1.bias"] = sd[f"{hf}.layer_norm1.bias"]
        out[f"{oa}.ln_2.weight"] = sd[f"{hf}.layer_norm2.weight"]
        out[f"{oa}.ln_2.bias"] = sd[f"{hf}.layer_norm2.bias"]
        out[f"{oa}.attn.in_proj_weight"] = torch.cat(
            [sd[f"{hf}.self_attn.{x}_proj.weight"] for x in ("q", "k", "v")], dim=0
        )
        out[f"{oa}.attn.in_proj_bias"] = torch.cat(
            [sd[f"{hf}.self_attn.{x}_proj.bias"] for x in ("q", "k", "v")], dim=0
        )
        out[f"{oa}.attn.out_proj.weight"] = sd[f"{hf}.self_attn.out_proj.weight"]
        out[f"{oa}.attn.out_proj.bias"] = sd[f"{hf}.self_attn.out_proj.bias"]
        out[f"{oa}.mlp.c_fc.weight"] = sd[f"{hf}.mlp.fc1.weight"]
        out[f"{oa}.mlp.c_fc.bias"] = sd[f"{hf}.mlp.fc1.bias"]
        out[f"{oa}.mlp.c_proj.weight"] = sd[f"{hf}.mlp.fc2.weight"]
        out[f"{oa}.mlp.c_proj.bias"] = sd[f"{hf}.mlp.fc2.bias"]

    v = "vision_model"
    out["visual.conv1.weight"] = sd[f"{v}.embeddings.patch_embedding.weight"]
    out["visual.class_embedding"] = sd[f"{v}.embeddings.class_embedding"]
    out["visual.positional_embedding"] = sd[f"{v}.embeddings.position_embedding.weight"]
    out["visual.ln_pre.weight"] = sd[f"{v}.pre_layrnorm.weight"]
    out["visual.ln_pre.bias"] = sd[f"{v}.pre_layrnorm.bias"]
    for i in range(vision_layers):
        block(f"{v}.encoder.layers.{i}", f"visual.transformer.resblocks.{i}")
    out["visual.ln_post.weight"] = sd[f"{v}.post_layernorm.weight"]
    out["visual.ln_post.bias"] = sd[f"{v}.post_layernorm.bias"]
    out["visual.proj"] = sd["visual_projection.weight"].t()

    t = "text_model"
    out["token_embedding.weight"] = sd[f"{t}.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd[f"{t}.embeddings.position_embedding.weight"]
    for i in range(text_layers):
        block(f"{t}.encoder.layers.{i}", f"transformer.resblocks.{i}")
    out["ln_final.weight"] = sd[f"{t}.final_layer_norm.weight"]
    out["ln_final.bias"] = sd[f"{t}.final_layer_norm.bias"]
    out["text_projection"] = sd["text_projection.weight"].t()
    out["logit_scale"] = sd["logit_scale"]

    # Every HF tensor must have gone somewhere (position_ids is a buffer).
    hf_params = {k for k in sd if not k.endswith("position_ids")}
    n_hf = sum(sd[k].numel() for k in hf_params)
    n_oa = sum(x.numel() for x in out.values())
    assert n_hf == n_oa, f"conversion lost parameters: {n_hf} HF vs {n_oa} OpenAI"
    return {k: x.contiguous() for k, x in out.items()}


def tiny_text_ids(gen: torch.Generator) -> torch.Tensor:
    lengths = [3, 11, 75, 30]  # 75 content tokens put the EOT at position 76
    ids = torch.full((len(lengths), CONTEXT_LENGTH), TINY_PAD, dtype=torch.int64)
    for row, n in enumerate(lengths):
        body = torch.randint(1, TINY_BOS, (n,), generator=gen, dtype=torch.int64)
        ids[row, 0] = TINY_BOS
        ids[row, 1 : 1 + n] = body
        ids[row, 1 + n] = TINY_EOS
    assert ids[2, CONTEXT_LENGTH - 1].item() == TINY_EOS
    return ids


def vision_reference(model: CLIPModel, pixels: torch.Tensor, interp: bool, prefix: str) -> dict:
    vm = model.vision_model
    out = vm(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=interp)
    hidden = out.hidden_states
    assert len(hidden) == model.config.vision_config.num_hidden_layers + 1
    # hidden_states[0] is the input of layer 1: the embeddings after pre_layrnorm.
    emb = vm.pre_layrnorm(vm.embeddings(pixels, interpolate_pos_encoding=interp))
    assert max_abs(emb, hidden[0]) == 0.0, "hidden_states[0] is not pre_layrnorm(embeddings)"
    feats = model.get_image_features(pixel_values=pixels, interpolate_pos_encoding=interp)
    # get_image_features = visual_projection(post_layernorm(class token of the last layer)).
    by_hand = model.visual_projection(vm.post_layernorm(hidden[-1][:, 0, :]))
    assert max_abs(by_hand, feats) < 1e-6, "get_image_features is not proj(ln_post(cls))"
    res = {f"{prefix}.pixels": pixels}
    for i, h in enumerate(hidden):
        res[f"{prefix}.hidden.{i}"] = h
    res[f"{prefix}.image_embeds"] = feats
    return res


def build_open_clip(cfg: CLIPConfig) -> nn.Module:
    v, t = cfg.vision_config, cfg.text_config
    model = open_clip.model.CLIP(
        embed_dim=cfg.projection_dim,
        vision_cfg=dict(
            layers=v.num_hidden_layers,
            width=v.hidden_size,
            head_width=v.hidden_size // v.num_attention_heads,
            mlp_ratio=v.intermediate_size / v.hidden_size,
            patch_size=v.patch_size,
            image_size=v.image_size,
        ),
        text_cfg=dict(
            context_length=t.max_position_embeddings,
            vocab_size=t.vocab_size,
            width=t.hidden_size,
            heads=t.num_attention_heads,
            layers=t.num_hidden_layers,
            mlp_ratio=t.intermediate_size / t.hidden_size,
        ),
        quick_gelu=True,
    )
    return model.eval()


def make_clip(out: Path, report: list) -> None:
    torch.manual_seed(0)
    cfg = tiny_clip_config()
    model = CLIPModel(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    perturb_clip_(model, gen)

    hf_dir = out / "clip_tiny"
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    # Round trip: what the Rust side will load gives the same model.
    reloaded = CLIPModel.from_pretrained(str(hf_dir)).eval()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), f"save_pretrained round trip changed {n1}"

    vl = cfg.vision_config.num_hidden_layers
    tl = cfg.text_config.num_hidden_layers
    oa = hf_to_openai(model.state_dict(), vl, tl)
    save_tensors(oa, out / "clip_tiny_openai.safetensors")

    ref = {}
    data_gen = torch.Generator().manual_seed(2)
    px_native = torch.randn((2, 3, 32, 32), generator=data_gen, dtype=torch.float32)
    px_interp = torch.randn((2, 3, 48, 48), generator=data_gen, dtype=torch.float32)
    ids = tiny_text_ids(data_gen)

    with torch.no_grad():
        ref.update(vision_reference(model, px_native, False, "vision.native"))
        ref.update(vision_reference(model, px_interp, True, "vision.interp"))
        assert ref["vision.native.hidden.8"].shape == (2, 17, 32)
        assert ref["vision.interp.hidden.8"].shape == (2, 37, 32)

        # No attention_mask: OpenAI's text tower uses the causal mask alone, and
        # positions up to the EOT never see the padding after it either way.
        text_out = model.text_model(input_ids=ids)
        last = text_out.last_hidden_state
        text_embeds = model.get_text_features(input_ids=ids)
        # HF pools at the first eos_token_id; OpenAI (and the Rust side) at the
        # argmax of the ids. With EOT = the top id these must be the same token.
        first_eos = (ids == TINY_EOS).int().argmax(dim=-1)
        assert torch.equal(first_eos, ids.argmax(dim=-1)), "first EOT != argmax of ids"
        assert torch.equal(text_out.pooler_output, last[torch.arange(ids.shape[0]), first_eos])
        by_argmax = model.text_projection(last[torch.arange(ids.shape[0]), ids.argmax(dim=-1)])
        assert max_abs(by_argmax, text_embeds) < 1e-6, "HF text pooling is not at the EOT"
        ref["text.ids"] = ids
        ref["text.embeds"] = text_embeds
        ref["text.last_hidden"] = last

        # Independent check of the OpenAI-named weights: open_clip's own CLIP,
        # loaded strictly, must give HF's embeddings.
        oc = build_open_clip(cfg)
        missing, unexpected = oc.load_state_dict(oa, strict=True)
        assert not missing and not unexpected
        oc_img = oc.encode_image(px_native, normalize=False)
        oc_txt = oc.encode_text(ids, normalize=False)
        d_img = max_abs(oc_img, ref["vision.native.image_embeds"])
        d_txt = max_abs(oc_txt, text_embeds)
        assert d_img <= 1e-5 and d_txt <= 1e-5, (d_img, d_txt)
        assert max_abs(oc.logit_scale, model.logit_scale) == 0.0
        report.append(
            f"open_clip.model.CLIP (strict load of clip_tiny_openai) vs HF: "
            f"image max|d| = {d_img:.3g}, text max|d| = {d_txt:.3g}"
        )

    save_tensors(ref, out / "clip_tiny_reference.safetensors")


# ---------------------------------------------------------------------------
# 2. Tokenizer
# ---------------------------------------------------------------------------

STATE_PROMPTS = [
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
    "damaged {}",
    "broken {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
]

TEMPLATES = [
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of a {}.",
    "a photo of the small {}.",
    "a blurry photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "there is a {} in the scene.",
    "this is one {} in the scene.",
    "a photo of a {} for visual inspection.",
    "a photo of a {} for anomaly detection.",
]

OBJECTS = ["bottle", "metal_nut", "pcb4", "screw", "hazelnut", "toothbrush", "macaroni2", "pipe fryum", "carpet",
           "capsules", "transistor"]

LONG_PROMPT = (
    "a high resolution industrial inspection photograph of a brushed metal nut lying on a dark conveyor belt "
    "under diffuse ring lighting, taken with a macro lens from directly above, showing a small scratch near "
    "the inner thread, a faint discoloured stain on the upper left flank, some dust particles, a reflection "
    "from the lamp, and the shadow of the gripper arm; the background is uniform grey, the focus is sharp "
    "across the whole part, the exposure is balanced, there is no motion blur, the colour temperature is "
    "neutral, and the image was captured on the second shift of the production line during the quality "
    "audit of batch number 4711 for the automotive customer in the northern region of the country"
)


def tokenizer_cases() -> list:
    cases = [
        # plain prompts
        "a photo of a damaged screw.",
        "a photo of a normal object.",
        "a photo of a damaged object.",
        "a photo of a bottle",
        "a photo of a metal_nut",
        "transistor",
        "x",
        "hello world hello world",
        # case
        "A PHOTO OF A CABLE.",
        "a PhOtO oF a MiXeD cAsE hazelnut",
        "CAFÉ ÜBER",
        # digits
        "pcb4",
        "3.14",
        "2024",
        "the year 1999 had 365 days",
        "1,000,000 units at 50% off $9.99",
        "v1.2.3 x86_64 e-mail@example.com",
        # punctuation
        "it's",
        "don't!!",
        "a,b;c",
        '"quoted" text',
        "'single quoted'",
        "(brackets) [square] {curly} <angle>",
        "---",
        "...",
        "wait... what?!",
        "https://example.com/a?b=c#frag",
        "#hashtag @user C++ & C#",
        # contractions
        "the dog's bone",
        "they're here, we've gone, I'm fine, you'll see, he'd know",
        "CAN'T WON'T SHOULDN'T",
        "it\u2019s",  # typographic apostrophe
        # whitespace
        "  leading and trailing spaces  ",
        "multiple    spaces\tand\ttabs\nand\nnewlines\r\n",
        "\t\n  \t",
        "",
        "non\u00a0breaking space",
        "zero\u200bwidth",
        # HTML entities
        "&amp;",
        "&lt;b&gt;bold&lt;/b&gt;",
        "fish &amp; chips",
        "&amp;lt;",
        "<b>bold</b> &amp; tags",
        # non-ASCII
        "café",
        "naïve façade",
        "Straße Größe",
        "日本語のテキスト",
        "中文 测试",
        "안녕하세요",
        "привет мир",
        "Ελληνικά ΟΔΟΣ",
        "İstanbul",
        "مرحبا بالعالم",
        "नमस्ते",
        "a photo \U0001F4F7 of a cat \U0001F431",
        "\U0001F469\u200d\U0001F52C scientist",
        "\U0001F1E9\U0001F1EA flag",
        "cafe\u0301",  # NFD
        "nai\u0308ve",  # NFD
        "A\u030angstro\u0308m",  # NFD
        "\ufb01ne \ufb02ow",  # ligatures
        "\uff21\uff22\uff23\uff11\uff12\uff13",  # full-width
        "\u201csmart quotes\u201d and \u2018single\u2019",
        "caf\u00c3\u00a9",  # mojibake of café
        "bell\u0007char",
        # special-token text inside a prompt
        "a <|endoftext|> inside",
        "<|startoftext|>",
        # length: exactly fills 77, one over, and a long prompt
        " ".join(["a"] * 75),
        " ".join(["a"] * 76),
        LONG_PROMPT,
    ]
    for i, state in enumerate(STATE_PROMPTS):
        cases.append(state.format(OBJECTS[i % len(OBJECTS)]))
    for i, tpl in enumerate(TEMPLATES):
        state = STATE_PROMPTS[(3 * i + 1) % len(STATE_PROMPTS)]
        cases.append(tpl.format(state.format(OBJECTS[(i + 5) % len(OBJECTS)])))
    assert len(LONG_PROMPT.split()) > 100
    assert len(set(cases)) == len(cases)
    return cases


def write_hf_vocab(bpe_gz: Path, dest: Path) -> None:
    """vocab.json / merges.txt from the OpenAI BPE file, as HF's CLIP files are
    laid out: the 256 byte symbols, the same with '</w>', the 48894 merges in
    rank order, then <|startoftext|> = 49406 and <|endoftext|> = 49407;
    merges.txt is '#version: 0.2' followed by the merges."""
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    assert len(pairs) == 48894 and all(len(p) == 2 for p in pairs)
    byte_syms = list(transformers.models.clip.tokenization_clip.bytes_to_unicode().values())
    vocab = byte_syms + [s + "</w>" for s in byte_syms] + ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    encoder = {tok: i for i, tok in enumerate(vocab)}
    assert len(encoder) == 49408 and encoder["<|endoftext|>"] == EOT_ID
    (dest / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs) + "\n",
                                     encoding="utf-8")


def truncate(ids: list) -> list:
    """open_clip's rule: cut to the context length, then force the end token."""
    if len(ids) > CONTEXT_LENGTH:
        ids = ids[:CONTEXT_LENGTH]
        ids[-1] = EOT_ID
    return ids


def make_tokenizer(out: Path, bpe_out: Path, report: list) -> None:
    bpe_src = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    bpe_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bpe_src, bpe_out)
    bpe_sha = sha256(bpe_out)

    oc = SimpleTokenizer(bpe_path=str(bpe_out))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_hf_vocab(bpe_out, tmp)
        slow = CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"))
        assert slow.fix_text is not None, "ftfy must be installed for the slow CLIPTokenizer"
        fast = CLIPTokenizerFast(str(tmp / "vocab.json"), str(tmp / "merges.txt"))
        # The HF vocabulary is open_clip's with renamed special tokens.
        for tok, i in oc.encoder.items():
            name = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}.get(tok, tok)
            assert slow.encoder[name] == i
        tok_json = fast.backend_tokenizer.to_str(pretty=True).encode("utf-8")

    cases = []
    disagree_oc, disagree_fast = [], []
    for text in tokenizer_cases():
        ids = slow(text, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
        assert ids[0] == SOT_ID and ids[-1] == EOT_ID and len(ids) <= CONTEXT_LENGTH, (text, ids)
        untruncated = slow(text)["input_ids"]
        assert ids == truncate(untruncated), f"HF truncation differs from open_clip's rule: {text!r}"

        oc_ids = truncate([oc.sot_token_id] + oc.encode(text) + [oc.eot_token_id])
        padded = oc([text], context_length=CONTEXT_LENGTH)[0].tolist()
        assert padded == oc_ids + [0] * (CONTEXT_LENGTH - len(oc_ids)), f"open_clip tokenize(): {text!r}"
        fast_ids = fast(text, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]

        case = {"text": text, "ids": ids}
        if oc_ids != ids:
            case["open_clip_ids"] = oc_ids
            disagree_oc.append(text)
        if fast_ids != ids:
            case["fast_ids"] = fast_ids
            disagree_fast.append(text)
        cases.append(case)
    assert len(cases) >= 60
    assert any(len(slow(c["text"])["input_ids"]) > CONTEXT_LENGTH for c in cases)

    v = versions()
    reference = (
        f"transformers {v['transformers']} CLIPTokenizer (slow, ftfy {v['ftfy']}, regex {v['regex']}) "
        f"built from vocab.json/merges.txt derived from bpe_simple_vocab_16e6.txt.gz of open_clip_torch "
        f"{v['open_clip_torch']} (sha256 {bpe_sha}); call: tokenizer(text, truncation=True, max_length=77); "
        f"open_clip_ids: open_clip SimpleTokenizer; fast_ids: CLIPTokenizerFast (tokenizers {v['tokenizers']})"
    )
    body = ",\n".join("  " + json.dumps(c, ensure_ascii=True) for c in cases)
    text = (
        "{\n"
        f' "reference": {json.dumps(reference)},\n'
        f' "context_length": {CONTEXT_LENGTH},\n'
        f' "cases": [\n{body}\n ]\n'
        "}\n"
    )
    json.loads(text)
    (out / "clip_tokens.json").write_text(text, encoding="utf-8")
    (out / "clip_tokenizer.json.gz").write_bytes(gzip.compress(tok_json, compresslevel=9, mtime=0))

    report.append(f"tokenizer cases: {len(cases)}")
    report.append("open_clip disagrees on: " + json.dumps(disagree_oc, ensure_ascii=True))
    report.append("fast disagrees on: " + json.dumps(disagree_fast, ensure_ascii=True))


# ---------------------------------------------------------------------------
# 3. ResNets
# ---------------------------------------------------------------------------


def tiny_torchvision_resnet(block, layers, stem: int, planes, num_classes: int = 10) -> ResNet:
    """torchvision's own ResNet class with a narrow stem and narrow stages,
    built by its own _make_layer so that forward and names are torchvision's."""
    m = ResNet(block, [1, 1, 1, 1], num_classes=num_classes)
    m.inplanes = stem
    m.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(stem)
    m.layer1 = m._make_layer(block, planes[0], layers[0])
    m.layer2 = m._make_layer(block, planes[1], layers[1], stride=2)
    m.layer3 = m._make_layer(block, planes[2], layers[2], stride=2)
    m.layer4 = m._make_layer(block, planes[3], layers[3], stride=2)
    m.fc = nn.Linear(planes[3] * block.expansion, num_classes)
    return m


def perturb_resnet_(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                w.add_(0.1 * w.std() * torch.randn(w.shape, generator=gen))
                if m.bias is not None:
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=gen))


def pooled_by_hook(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The flattened input of fc: the global-average-pooled feature."""
    got = {}
    handle = model.fc.register_forward_hook(lambda mod, inp, out: got.setdefault("x", inp[0].detach().clone()))
    model(x)
    handle.remove()
    return got["x"]


def make_resnets(out: Path, report: list) -> None:
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(4)
    models = {}
    models["basic"] = tiny_torchvision_resnet(BasicBlock, [1, 1, 1, 1], 8, [8, 16, 32, 64])
    models["bottleneck"] = tiny_torchvision_resnet(Bottleneck, [1, 2, 1, 1], 8, [4, 8, 16, 32])
    models["timm"] = timm.models.resnet.ResNet(
        block=timm.models.resnet.BasicBlock, layers=[1, 1, 1, 1], channels=(8, 16, 32, 64), num_classes=10
    )
    files = {"basic": "resnet_tiny_basic", "bottleneck": "resnet_tiny_bottleneck", "timm": "resnet_tiny_timm"}

    data_gen = torch.Generator().manual_seed(5)
    x = torch.randn((2, 3, 64, 64), generator=data_gen, dtype=torch.float32)
    x_odd = torch.randn((1, 3, 70, 70), generator=data_gen, dtype=torch.float32)
    ref = {"input": x, "input_odd": x_odd}
    with torch.no_grad():
        for key, m in models.items():
            perturb_resnet_(m, gen)
            m.eval()
            sd = m.state_dict()
            save_tensors(dict(sd), out / f"{files[key]}.safetensors")
            for suffix, inp in (("pooled", x), ("pooled_odd", x_odd)):
                pooled = pooled_by_hook(m, inp)
                if key == "timm":
                    own = m.forward_head(m.forward_features(inp), pre_logits=True)
                    assert max_abs(own, pooled) == 0.0
                zeros = (pooled == 0).float().mean().item()
                assert zeros < 0.5, f"{key}.{suffix}: {zeros:.0%} of the pooled features are zero"
                ref[f"{key}.{suffix}"] = pooled
            report.append(
                f"{files[key]}: {len(sd)} tensors, pooled {tuple(ref[key + '.pooled'].shape)}, "
                f"pooled_odd {tuple(ref[key + '.pooled_odd'].shape)}"
            )
    tv_names = set(models["basic"].state_dict())
    timm_names = set(models["timm"].state_dict())
    report.append(
        "timm vs torchvision (BasicBlock [1,1,1,1]) parameter names equal: "
        f"{tv_names == timm_names}; only torchvision: {sorted(tv_names - timm_names)}; "
        f"only timm: {sorted(timm_names - tv_names)}"
    )
    # Same question on a structurally equal pair (no weights are downloaded).
    tv18 = set(torchvision.models.resnet18(weights=None).state_dict())
    timm18 = set(timm.create_model("resnet18", pretrained=False).state_dict())
    report.append(f"torchvision resnet18 vs timm resnet18 state-dict names equal: {tv18 == timm18}")
    save_tensors(ref, out / "resnet_reference.safetensors")


# ---------------------------------------------------------------------------


def main() -> None:
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=repo / "tests" / "fixtures")
    ap.add_argument("--bpe-out", type=Path, default=repo / "models" / "bpe_simple_vocab_16e6.txt.gz",
                    help="where to copy open_clip's OpenAI BPE vocabulary")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    args.out.mkdir(parents=True, exist_ok=True)

    report = []
    make_clip(args.out, report)
    make_tokenizer(args.out, args.bpe_out, report)
    make_resnets(args.out, report)

    for line in report:
        print(line)
    print(json.dumps(versions(), indent=1))


if __name__ == "__main__":
    main()
