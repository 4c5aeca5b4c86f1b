"""The prompts the LLM generators send, versioned: the version is stored with each sentence."""

PROMPT_VERSION = "captions-v1"


def list_request(concept: str, count: int) -> str:
    """Ask a chat model for `count` varied, visual one-sentence captions naming the concept."""
    return (
        f"Write {count} different one-sentence captions for photographs that show a {concept}. "
        f'Every caption must contain the word "{concept}" and describe something concrete and '
        "visible: pose, action, place, lighting, colours, camera angle or style. Vary them as "
        "much as you can and keep each under 25 words. Write one caption per line, with no "
        "numbering and nothing else."
    )


def single_request(concept: str) -> str:
    """pix2pix-zero's own prompt (make_edit_direction.py): one caption per sampled sequence."""
    return (
        f"Provide a caption for images containing a {concept}. The captions should be in "
        "English and should be no longer than 150 characters."
    )
