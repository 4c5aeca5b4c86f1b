"""What the studio's page says: the help under each setting, the CLI's messages in the page's
words, the status lines, and the captions of its galleries and lists."""
from __future__ import annotations


def _info() -> dict:
    """The help under each edit setting: what it does, the usual range, the allowed one."""
    from sd_models.settings import SETTING_BOUNDS as B

    return {
        "scale": "how far along the direction: 0 is no change, 1 the direction as saved; 0.5 to 2 is usual "
                 f"({B['scale'][0]:g} to {B['scale'][1]:g} allowed)",
        "xa_guidance": "how hard the edit keeps the photo's layout (its cross-attention maps); 0.05 to 0.2 is usual "
                       f"({B['xa_guidance'][0]:g} to {B['xa_guidance'][1]:g} allowed)",
        "guidance_scale": "how strongly the caption steers each step (classifier-free guidance); 3 to 7.5 is "
                          f"usual ({B['guidance_scale'][0]:g} to {B['guidance_scale'][1]:g} allowed)",
        "steps": "denoising steps of the inversion and the edit; 50 as in the paper, fewer is faster and rougher "
                 f"({B['steps'][0]} to {B['steps'][1]} allowed)",
        "size": "the longer side in pixels, a multiple of 8; the model's own size edits best (8 to 4096)",
        "seed": "the noise the inversion is regularised with; the same seed repeats an edit (0 to 4294967295)",
    }


INFO = _info()

# what the CLI's messages tell a user to pass, said with the page's controls
PAGE_WORDS = [
    (r"pass --caption, or set --caption-model to a local BLIP folder",
     "type a caption in the 'caption' box (BLIP, which writes one, cannot be loaded on this server)"),
    (r"set OPENAI_API_KEY, or point --base-url at an OpenAI-compatible server \(or use --generator local\)",
     "the server has no OpenAI key or server; choose 'local' or 'template' as the generator"),
    (r"; --overwrite stores this one as its next version and keeps the old one \(dbank direction history [^)]*\)",
     "; tick 'replace' to store this one as its next version (the old one is kept)"),
    (r"pass --name, or --overwrite to", "type another name in 'import as', or tick 'replace' to"),
    (r"\(dbank restore (\S+) --as NAME brings it back\)", r"(the Trash table below brings it back)"),
    (r"gives itself: pass --name\)", "gives itself: type another in 'import as')"),
    (r"\(restore it with --as NAME\)", "(type another name in 'restore as')"),
    (r"\(dbank direction rename ([^)]*)\)", "(the CLI's dbank direction rename renames it)"),
    (r"add both concepts with the same --model( \(none match --model [^)]*\))?",
     "this studio's model embeds concepts added here; add the other again"),
    (r"pick one with --model", "the CLI picks one with --model"),
    (r"use a smaller --size", "use a smaller 'size'"),
    (r"; set --llm\b", "; choose another LLM"),
    (r" \(--timeout\)| \(--deadline\)", ""),
    (r"\(dbank add-concept [^)]* builds (it|them)\)", r"('build' below makes \1 with the Bank tab's generator)"),
]


def page_words(message: str) -> str:
    """A message of the bank or the editor as the page says it: its controls, not CLI flags."""
    import re

    for pattern, replacement in PAGE_WORDS:
        message = re.sub(pattern, replacement, message)
    return message


# the edit's inputs, in the order of the page's controls (the check marks the one at fault)
EDIT_FIELDS = ("image", "caption", "directions", "scale", "xa_guidance", "guidance_scale", "steps", "size", "seed",
               "attention_word", "use_tuned", "to_word", "from_word")
MAX_HISTORY = 48  # results of a session kept in the history strip


def status_line(message: str, notes=()) -> str:
    """The Markdown beside Run: the message and each note on its own line, as plain text."""
    import re

    lines = [message, *notes]
    return "  \n".join(re.sub(r"([\\`*_{}\[\]()#+!<>|~-])", r"\\\1", line) for line in lines if line)


def gallery_of(outcome) -> list:
    """(PNG path, caption with its scores) per picture of a studio edit, for the gallery."""
    return [(path, scored_label(label, outcome.scores.get(label))) for path, label in outcome.files]


def scored_label(name: str, scores: dict | None) -> str:
    """A gallery caption: the picture's name, and its scores on a line under it when it has some."""
    if not scores:
        return name
    return (f"{name}\nCLIP dir. {scores['clip_directional_similarity']:.3f} · structure "
            f"{scores['structure_distance']:.4f} · change {scores['whole_image_change']:.3f}")


def history_label(outcome) -> str:
    """A history entry's caption: the directions (a word's too) and the settings that tell it from
    the others."""
    _, _, scale, xa_guidance, _, _, _, seed, *_ = outcome.controls
    edits = [label for _, label in outcome.files[2:] if not label.startswith("attention: ")]
    return f"{', '.join(edits)} · scale {scale:g} · cross-attention {xa_guidance:g} · seed {seed}"


def before_after(files: list) -> tuple:
    """The slider's first pair of an edit's (path, caption) pictures: the input and the first edit."""
    return files[0][0], files[2][0]


def history_strip(kept: list) -> list:
    """(picture, caption) per history entry, oldest first: its first edit stands for it."""
    return [(entry["files"][2][0], f"{number}. {entry['label']}") for number, entry in enumerate(kept, 1)]


def exportable(directions: list[str], concepts: list[str]) -> list[tuple[str, str]]:
    """The export list's (label, name) choices: each saved direction, then each concept that no
    direction's name hides, labelled with what it is."""
    return ([(f"{name} (direction)", name) for name in directions]
            + [(f"{name} (concept)", name) for name in concepts if name not in directions])
