import pytest

from endopat.config import FinetuneConfig, ModelConfig, load_config
from endopat.tasks.config import PretrainConfig
from endopat.errors import EndopatError


def test_a_typo_in_a_config_key_is_an_error_naming_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stpes: 10\nmodel:\n  image_sise: [64, 64]\n")
    with pytest.raises(EndopatError) as err:
        load_config(PretrainConfig, path)
    assert "stpes" in str(err.value) and "model.image_sise" in str(err.value)
    assert str(path) in str(err.value)


def test_overrides_set_nested_keys_and_skip_unset_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\n")
    cfg = load_config(FinetuneConfig, path, model__input="L", lr=None)
    assert FinetuneConfig().model.input != "L"  # so that the override is seen
    assert cfg.epochs == 7 and cfg.model.input == "L" and cfg.lr == FinetuneConfig().lr


def test_image_size_must_suit_the_unet():
    with pytest.raises(ValueError, match="multiples of 16"):
        ModelConfig(image_size=(100, 100))


def test_loss_weights_accept_auto_or_a_non_negative_number():
    import pytest
    from pydantic import ValidationError

    from endopat.config import LossWeights

    assert LossWeights().lam == "auto" and LossWeights(phi=0.5).phi == 0.5
    with pytest.raises(ValidationError):
        LossWeights(lam=-1)
    with pytest.raises(ValidationError):
        LossWeights(phi="automatic")
