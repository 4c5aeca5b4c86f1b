"""The prompts the LLM generators send, versioned: the version is stored with each sentence."""

PROMPT_VERSION = "captions-v1"
FEW_SHOT_VERSION = "captions-scenes-v2"

SYSTEM = ("You write captions for ordinary photographs. A caption is one short sentence that says where the "
          "subject is and what it is doing, as a camera would see it. You answer with a numbered list of "
          "captions and nothing else.")

# worked examples, a thing and an animal, each only placed and doing something: with the earlier
# one (colours and styles of a lighthouse) SmolLM2 gave zebras gold coats and horns (see
# benchmarks/generate_throughput.py --quality); an example the concept names is left out
EXAMPLES = {
    "lighthouse": [
        "A lighthouse on a rocky cliff at sunset.",
        "A lighthouse seen from a sandy beach on a foggy morning.",
        "A lighthouse beside a small fishing harbour.",
        "A lighthouse at night under a starry sky.",
        "A lighthouse in winter, with snow on the rocks around it.",
        "A lighthouse at the end of a long stone pier.",
        "A lighthouse behind a field of tall grass.",
        "A lighthouse photographed from a boat on a calm sea.",
    ],
    "deer": [
        "A deer grazing in a meadow at dawn.",
        "A deer standing at the edge of a forest.",
        "A deer drinking from a shallow stream.",
        "A deer walking through fresh snow.",
        "A deer lying in tall grass in the afternoon.",
        "A deer crossing a quiet country road.",
        "A deer in a green field on a misty morning.",
        "A deer looking at the camera from behind a tree.",
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
    """A chat for small local models: a system rule, worked examples (numbered lists of captions
    for other concepts, one turn each), then the request for `count` captions of `concept`."""

    def ask(name: str, n: int) -> str:
        return f"Write {n} different captions for photos of a {name}. Each caption must contain the word \"{name}\"."

    messages = [{"role": "system", "content": SYSTEM}]
    for name, shown in EXAMPLES.items():
        if name not in concept.casefold():
            messages += [{"role": "user", "content": ask(name, len(shown))},
                         {"role": "assistant", "content": "\n".join(f"{i}. {text}" for i, text in enumerate(shown, 1))}]
    return messages + [{"role": "user", "content": ask(concept, count)}]


def single_request(concept: str) -> str:
    """pix2pix-zero's own prompt (make_edit_direction.py): one caption per sampled sequence."""
    return (
        f"Provide a caption for images containing a {concept}. The captions should be in "
        "English and should be no longer than 150 characters."
    )
