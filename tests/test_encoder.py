import numpy as np
import pytest

from direction_bank.text.encoder import TextEncoder
from direction_bank.errors import ModelUnavailable
from tests.reference import reference_embeddings

SENTENCES = ["a photo of a horse", "a horse in a field at sunset", "a painting of a horse", "horse"]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_embeddings_equal_pix2pix_zero_one_at_a_time(encoder, sd_model, batch_size):
    got = encoder.embed(SENTENCES, batch_size=batch_size)
    assert got.shape == (4, 77, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_embeddings(sd_model, SENTENCES), atol=1e-5)


def test_token_counts_include_start_and_end_and_are_not_truncated(encoder):
    long = "a horse " * 60
    assert encoder.token_counts(["a photo of a horse", long]) == [7, 122]
    assert encoder.max_length == 77 and encoder.hidden_size == 32


def test_fingerprint_is_sha256_of_weights_and_reuses_known_value(encoder):
    import hashlib

    expected = hashlib.sha256(encoder.weights_files[0].read_bytes()).hexdigest()
    assert encoder.fingerprint() == expected
    assert encoder.fingerprint(lambda signature: "cached") == "cached"


def test_bare_text_encoder_folder_loads(sd_model, tmp_path):
    import shutil

    shutil.copytree(sd_model / "text_encoder", tmp_path / "te")
    shutil.copytree(sd_model / "tokenizer", tmp_path / "te", dirs_exist_ok=True)
    bare = TextEncoder.load(str(tmp_path / "te"), device="cpu")
    assert bare.hidden_size == 32


def test_unavailable_model_is_one_clear_error():
    with pytest.raises(ModelUnavailable) as error:
        TextEncoder.load("nobody/no-such-model", device="cpu")
    message = str(error.value)
    assert "\n" not in message and "DBANK_MODEL" in message and "nobody/no-such-model" in message
