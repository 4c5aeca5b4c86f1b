"""Many writers at once, on SQLite and PostgreSQL: nothing lost, nothing counted twice."""
import multiprocessing

import numpy as np

from direction_bank import Bank
from tests.reference import reference_embeddings

PLACES = ["field", "beach", "barn", "forest", "city", "river", "desert", "garden", "meadow", "road"]
COLOURS = ["brown", "white", "black", "grey", "spotted"]


def _sentences(concept, writer):
    return [f"a {COLOURS[i % 5]} {concept} number {writer}-{i} in a {PLACES[i % 10]}" for i in range(50)]


def _write(database, encoder, concept, writer, errors):
    import torch

    torch.set_num_threads(1)
    try:
        with Bank(database) as bank:
            bank.add_sentences(concept, _sentences(concept, writer), encoder, batch_size=5)
    except Exception as error:  # reported to the parent: none may reach a user
        errors.put(f"{concept}-{writer}: {type(error).__name__}: {error}")
        raise


def test_four_writers_on_one_concept_and_four_on_separate_ones(database, encoder, sd_model):
    # forked processes share the loaded encoder, so the database is what is contended
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    Bank(database).close()  # the schema exists before the writers race
    jobs = [("horse", w) for w in range(4)] + [(f"animal{w}", w) for w in range(4)]
    workers = [context.Process(target=_write, args=(database, encoder, c, w, errors)) for c, w in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert errors.empty(), errors.get()
    assert [worker.exitcode for worker in workers] == [0] * 8
    with Bank(database) as bank:
        for concept, expected in [("horse", 200)] + [(f"animal{w}", 50) for w in range(4)]:
            texts = [s.text for s in bank.sentences(concept)]
            assert len(texts) == len(set(texts)) == expected
            stats = bank.statistics(concept, bank.common_encoder(concept, concept))
            direct = reference_embeddings(sd_model, texts)
            assert stats.count == expected
            np.testing.assert_allclose(stats.mean, direct.mean(0), atol=1e-5)
            np.testing.assert_allclose(stats.variance(), direct.var(0, ddof=1), atol=1e-4)
