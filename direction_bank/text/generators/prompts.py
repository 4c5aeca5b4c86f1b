"""The prompts the LLM generators send, versioned: the version is stored with each sentence."""

PROMPT_VERSION = "captions-v1"
FEW_SHOT_VERSION = "captions-fewshot-v1"

SYSTEM = ("You write captions for photographs. A caption is one sentence that describes what can be "
          "seen in the photo. You answer with a numbered list of captions and nothing else.")

# two worked examples, on concepts a user is unlikely to ask for (the other one is used then)
EXAMPLES = {
    "lighthouse": [
        "A white lighthouse on a rocky cliff under a stormy grey sky.",
        "A red and white striped lighthouse at sunset, seen from the beach.",
        "An old stone lighthouse reflected in a calm harbour at dawn.",
        "A lighthouse beam cutting through thick fog at night.",
        "A black and white photo of a lighthouse surrounded by crashing waves.",
    ],
    "bicycle": [
        "A blue bicycle leaning against a brick wall in the afternoon sun.",
        "A child riding a small bicycle along a tree-lined park path.",
        "A vintage bicycle with a wicker basket full of flowers.",
        "A mountain bicycle splashed with mud on a forest trail.",
        "A close-up of a bicycle wheel on a wet city street at night.",
    ],
}


def list_request(concept: str, count: int) -> str:
    """Ask a chat model for `count` varied, visual one-sentence captions naming the concept."""
    return (
        f"Write {count} different one-sentence captions for photographs that show a {concept}. "
        f'Every caption must contain the word "{concept}" and describe something concrete and '
        "visible: pose, action, place, lighting, colours, camera angle or style. Vary them as "
        "much as you can and keep each under 25 words. Write one caption per line, with no "
        "numbering and nothing else."
    )


def few_shot_messages(concept: str, count: int) -> list[dict]:
    """A chat for small local models: a system rule, one worked example (a numbered list of
    captions for another concept), then the request for `count` captions of `concept`."""
    example = next(name for name in EXAMPLES if name not in concept.casefold())
    shown = EXAMPLES[example]

    def ask(name: str, n: int) -> str:
        return f"Write {n} different captions for photos of a {name}. Each caption must contain the word \"{name}\"."

    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": ask(example, len(shown))},
        {"role": "assistant", "content": "\n".join(f"{i}. {text}" for i, text in enumerate(shown, 1))},
        {"role": "user", "content": ask(concept, count)},
    ]


def single_request(concept: str) -> str:
    """pix2pix-zero's own prompt (make_edit_direction.py): one caption per sampled sequence."""
    return (
        f"Provide a caption for images containing a {concept}. The captions should be in "
        "English and should be no longer than 150 characters."
    )
