"""Tiny random Stable Diffusion checkpoints saved to disk in the real diffusers layout.

Tests and benchmarks load them through the same `from_pretrained` code as a real model id.
`dbank demo-model` writes one for trying dbank without Stable Diffusion weights. The tokenizer
is the real SD 1.x CLIP tokenizer, rebuilt from OpenAI CLIP's BPE merges file, which dbank ships
(`direction_bank/data`, with its MIT licence).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

# SD 1.x's text encoder (CLIP ViT-L/14 text tower) and a tiny one of the same shape family.
CLIP_L_TEXT = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    projection_dim=768, hidden_act="quick_gelu",
)
TINY_TEXT = dict(
    hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    projection_dim=32, hidden_act="quick_gelu",
)


def _bytes_to_unicode() -> list[str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def clip_bpe_file() -> Path:
    """The SD 1.x CLIP BPE merges file that dbank ships."""
    return Path(__file__).resolve().parent / "data" / "clip_bpe_simple_vocab_16e6.txt.gz"


def write_clip_tokenizer(folder: Path) -> Path:
    """Save the SD 1.x CLIP tokenizer (vocab 49408, max length 77) to `folder`."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(clip_bpe_file()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    base = _bytes_to_unicode()
    vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    raw = folder / "bpe"
    raw.mkdir(exist_ok=True)
    (raw / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (raw / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(folder)
    return folder


def write_text_encoder(folder: Path, seed: int = 0, **config) -> Path:
    """Save a random CLIPTextModel (vocab 49408, 77 positions) with the given config."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    settings = dict(TINY_TEXT, vocab_size=49408, max_position_embeddings=77,
                    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    settings.update(config)
    model = CLIPTextModel(CLIPTextConfig(**settings)).eval()
    model.save_pretrained(folder)
    return Path(folder)


def write_sd_text_checkpoint(folder: Path, seed: int = 0, tokenizer_from: Path | None = None,
                             **config) -> Path:
    """A Stable Diffusion folder with text_encoder/ and tokenizer/ (what the bank loads); the
    tokenizer is copied from `tokenizer_from` when given (building it takes seconds)."""
    import shutil

    folder = Path(folder)
    if tokenizer_from is not None:
        shutil.copytree(tokenizer_from, folder / "tokenizer")
    else:
        write_clip_tokenizer(folder / "tokenizer")
    write_text_encoder(folder / "text_encoder", seed=seed, **config)
    return folder


WORDS = ["a", "the", "horse", "horses", "photo", "of", "in", "on", "field", "beach", "brown",
         "white", "running", "standing", "at", "sunset", "snow", "with", "rider", "near", "barn",
         "small", "large", "painting", "cat", "grass", "river", "forest", "old", "young"]


def _word_tokenizer(chat_template: str | None = None):
    """A word-level fast tokenizer over WORDS (random models then write sentences of real words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>", "<s>"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def write_tiny_seq2seq(folder: Path, seed: int = 0) -> Path:
    """A random T5 (Flan-T5's architecture, tiny) with a word-level tokenizer, saved to `folder`."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    tokenizer = _word_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                      num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def write_tiny_causal(folder: Path, seed: int = 0) -> Path:
    """A random Llama (SmolLM2's architecture, tiny) with a chat template, saved to `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = _word_tokenizer(
        "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}"
        "{% if add_generation_prompt %}<s>{% endif %}"
    )
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         pad_token_id=0, eos_token_id=1, bos_token_id=3)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def write_tiny_gguf(path: Path, like: Path, seed: int = 0, vocab: int = 1024) -> Path:
    """A GGUF file with the metadata of the Llama GGUF file `like`, its byte-level BPE tokenizer
    cut to the first `vocab` tokens (and the merges among them), and random float32 weights of a
    one-layer, 64-wide model: converted like the real file, in seconds (the real tokenizer's
    98k strings alone take 7 s to read, three times a conversion)."""
    import gguf
    import numpy as np

    sizes = {"block_count": 1, "embedding_length": 64, "feed_forward_length": 128, "attention.head_count": 4,
             "attention.head_count_kv": 2, "rope.dimension_count": 16}
    source = gguf.GGUFReader(str(like))
    tokens = source.fields["tokenizer.ggml.tokens"].contents()[:vocab]
    kept = set(tokens)
    merges = [pair for pair in source.fields["tokenizer.ggml.merges"].contents()
              if set(pair.split(" ")) <= kept and pair.replace(" ", "") in kept]
    cut = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges, "llama.vocab_size": vocab,
           "tokenizer.ggml.token_type": source.fields["tokenizer.ggml.token_type"].contents()[:vocab]}
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, field in source.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        value = cut[name] if name in cut else sizes.get(name.removeprefix("llama."), field.contents())
        writer.add_key_value(name, value, field.types[0], sub_type=field.types[1] if len(field.types) > 1 else None)
    width, inner = sizes["embedding_length"], sizes["feed_forward_length"]
    kv_width = width // sizes["attention.head_count"] * sizes["attention.head_count_kv"]
    rng = np.random.default_rng(seed)
    shapes = {"token_embd.weight": (vocab, width), "output_norm.weight": (width,),
              "blk.0.attn_norm.weight": (width,), "blk.0.ffn_norm.weight": (width,),
              "blk.0.attn_q.weight": (width, width), "blk.0.attn_k.weight": (kv_width, width),
              "blk.0.attn_v.weight": (kv_width, width), "blk.0.attn_output.weight": (width, width),
              "blk.0.ffn_gate.weight": (inner, width), "blk.0.ffn_up.weight": (inner, width),
              "blk.0.ffn_down.weight": (width, inner)}
    for name, shape in shapes.items():
        values = np.ones(shape) if len(shape) == 1 else rng.normal(0, 0.02, shape)
        writer.add_tensor(name, values.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def save_as_if_from_cuda(tensor, path: Path) -> Path:
    """torch.save a tensor as if it lived on cuda:0 (pix2pix-zero's files do), without a GPU:
    the storage location in the pickle is rewritten, so loading it needs map_location."""
    import zipfile

    import torch

    path = Path(path)
    plain = path.with_name(path.stem + ".cpu-tmp")
    torch.save(tensor, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info, data)
    plain.unlink()
    return path


TINY_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=1, sample_size=16,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
    attention_head_dim=8, norm_num_groups=16,
)
# four levels, cross-attention in the three lower ones and the mid block: odd latent sides give
# grids that round up (a 36x20 latent's mid block is 5x3), as SD's do at sizes like 512x288
TINY_DEEP_UNET = dict(
    block_out_channels=(16, 16, 16, 16), layers_per_block=1, sample_size=16,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
)
# `dbank demo-model`: 64 pixels (32x32 latents), attention only at 16x16, so quick on a CPU
DEMO_UNET = dict(TINY_UNET, sample_size=32, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
TINY_VAE = dict(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=16)
# Stable Diffusion 1.4's shapes (the diffusers defaults are SD 1.x's), so the FLOPs are the real ones
SD14_UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
SD14_VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, sample_size=512)


def write_tiny_sd(folder: Path, seed: int = 0, tokenizer_from: Path | None = None,
                  prediction_type: str = "epsilon", shape: str = "tiny") -> Path:
    """A whole random Stable Diffusion in the diffusers layout (model_index.json, unet/, vae/,
    text_encoder/, tokenizer/, scheduler/), loadable like a real model id: tiny, tiny with a
    four-level UNet (shape='tiny-deep'), tiny at 64 pixels (shape='demo'), or with SD 1.4's
    shapes (shape='sd14')."""
    import json

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    full = shape == "sd14"
    folder = write_sd_text_checkpoint(folder, seed=seed, tokenizer_from=tokenizer_from,
                                      **(CLIP_L_TEXT if full else {}))
    torch.manual_seed(seed)
    unet = {"sd14": SD14_UNET, "tiny": TINY_UNET, "tiny-deep": TINY_DEEP_UNET, "demo": DEMO_UNET}[shape]
    UNet2DConditionModel(in_channels=4, out_channels=4, **unet).save_pretrained(folder / "unet")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **(SD14_VAE if full else TINY_VAE)
                  ).save_pretrained(folder / "vae")
    DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type,
                  ).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "requires_safety_checker": False,
    }))
    return folder


def write_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """A random BLIP captioning model (tiny) with its processor, saved to `folder`."""
    import torch
    from transformers import (
        BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), bos_token="[DEC]")
    (folder / "vocab.txt").unlink()
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    torch.manual_seed(seed)
    config = BlipConfig(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=16, bos_token_id=5, sep_token_id=3,
                         pad_token_id=0, max_position_embeddings=64),
        projection_dim=16,
    )
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


class FakeEncoder:
    """A deterministic stand-in for TextEncoder: each sentence's [77, D] embedding is drawn from
    a generator seeded by its text, so repeated runs agree and costs nothing to compute."""

    encoder_class = "FakeEncoder"
    pooled_size = 0  # an SD 1.x/2.x-like encoder: token states only

    def __init__(self, hidden_size: int = 768, max_length: int = 77, model: str = "fake/encoder"):
        self.hidden_size, self.max_length, self.model = hidden_size, max_length, model

    def weights_signature(self) -> None:
        """Fake weights live in no file."""
        return None

    def fingerprint(self, known=None) -> str:
        """A fingerprint fixed by the shape (the 'weights')."""
        import hashlib

        return hashlib.sha256(f"fake-{self.hidden_size}-{self.max_length}".encode()).hexdigest()

    def token_counts(self, texts):
        """Words plus start and end tokens."""
        return [len(text.split()) + 2 for text in texts]

    def embed(self, texts, batch_size: int = 64, progress: bool = False):
        """[n, max_length, D] float32, a function of each text alone."""
        import hashlib

        import numpy as np

        out = np.empty((len(texts), self.max_length, self.hidden_size), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng(seed).standard_normal((self.max_length, self.hidden_size), np.float32)
        return out


def fresh_postgres_database(url: str, name: str) -> str:
    """The URL of an empty database `name` (dropped first if it exists) on the server at `url`."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


# SDXL's layout at toy sizes (as diffusers' own SDXL tests build it): two CLIP text encoders of
# 32 dims (prompt embeds 64 = 32 + 32; the second one's projection, 32, is the pooled embed),
# a UNet with text_time added conditions (6 time ids x 8 + 32 pooled = 80)
TINY_SDXL_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=2, sample_size=32,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
    cross_attention_dim=64, norm_num_groups=32,
)


# SDXL 1.0 base's shapes (stabilityai/stable-diffusion-xl-base-1.0's configs), so the FLOPs are the
# real ones: a 2.6 B-parameter UNet, CLIP ViT-L and OpenCLIP bigG text towers, the SD VAE's shape
SDXL_UNET = dict(
    block_out_channels=(320, 640, 1280), layers_per_block=2, sample_size=128,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, transformer_layers_per_block=(1, 2, 10),
    projection_class_embeddings_input_dim=2816, cross_attention_dim=2048, norm_num_groups=32,
)
OPENCLIP_BIGG_TEXT = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
    projection_dim=1280, hidden_act="gelu",
)
SDXL_VAE = dict(SD14_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)


def write_tiny_sdxl(folder: Path, seed: int = 0, tokenizer_from: Path | None = None, shape: str = "tiny") -> Path:
    """A whole random SDXL in the diffusers layout (model_index.json, unet/, vae/, text_encoder/,
    text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/), loadable like a real SDXL id: tiny,
    or with SDXL 1.0 base's shapes (shape='sdxl', saved in fp16: about 7 GB); both tokenizers
    are the real CLIP BPE (the second pads with "!", as SDXL's does)."""
    import json
    import shutil

    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    full = shape == "sdxl"
    folder = write_sd_text_checkpoint(folder, seed=seed, tokenizer_from=tokenizer_from,
                                      **(CLIP_L_TEXT if full else {}))
    stored = (lambda model: model.half()) if full else (lambda model: model)  # the big ones in fp16
    shutil.copytree(folder / "tokenizer", folder / "tokenizer_2")
    second = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", pad_token="!")
    shutil.rmtree(folder / "tokenizer_2")
    second.save_pretrained(folder / "tokenizer_2")
    torch.manual_seed(seed + 1)
    settings = dict(OPENCLIP_BIGG_TEXT if full else dict(TINY_TEXT, projection_dim=32), vocab_size=49408,
                    max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=0)
    stored(CLIPTextModelWithProjection(CLIPTextConfig(**settings)).eval()).save_pretrained(folder / "text_encoder_2")
    torch.manual_seed(seed)
    stored(UNet2DConditionModel(in_channels=4, out_channels=4, **(SDXL_UNET if full else TINY_SDXL_UNET))
           ).save_pretrained(folder / "unet")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **(SDXL_VAE if full else TINY_VAE)
                  ).save_pretrained(folder / "vae")
    EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                           timestep_spacing="leading").save_pretrained(folder / "scheduler")
    # SDXL base's scheduler config also carries the DDIM keys a DDIM scheduler built from it reads
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {**config, "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True}))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "force_zeros_for_empty_prompt": True,
        "feature_extractor": [None, None], "image_encoder": [None, None],
    }))
    return folder


def write_tiny_clip(folder: Path, seed: int = 0, tokenizer_from: Path | None = None) -> Path:
    """A random CLIP (text and vision towers, 32-pixel images) with its processor (the real
    CLIP tokenizer), saved to `folder` as openai/clip-vit-large-patch14 is laid out."""
    import shutil

    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_folder = folder / ".tokenizer"
    if tokenizer_from is not None:
        shutil.copytree(tokenizer_from, tokenizer_folder)
    else:
        write_clip_tokenizer(tokenizer_folder)
    torch.manual_seed(seed)
    text = dict(TINY_TEXT, vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                pad_token_id=49407)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8, hidden_act="quick_gelu")
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval().save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=CLIPTokenizer.from_pretrained(tokenizer_folder))
    processor.save_pretrained(folder)
    shutil.rmtree(tokenizer_folder)
    return folder


def write_tiny_dino(folder: Path, seed: int = 0) -> Path:
    """A random DINO-style ViT (8-pixel patches, 32-pixel images) with its image processor, saved
    to `folder` as facebook/dino-vitb8 is laid out."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                       image_size=32, patch_size=8)
    ViTModel(config, add_pooling_layer=False).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)
