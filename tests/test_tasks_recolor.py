import torch

from conftest import TINY_MODEL, run_cli
from endopat.colour import ABHistogram
from endopat.config import DiscriminatorConfig
from endopat.networks import Discriminator
from endopat.tasks.recolor import judge


def test_the_discriminator_judges_fakes_alike_in_its_step_and_the_generators():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(width=0.25)).train()  # batch norm, training mode
    real = torch.randn(4, 3, 32, 32)
    fake = torch.randn(4, 3, 32, 32, requires_grad=True)
    _, d_fake_in_d_step = judge(D, real, fake.detach())
    _, d_fake_in_g_step = judge(D, real, fake)
    assert torch.allclose(d_fake_in_d_step, d_fake_in_g_step)
    # judging the fakes on their own would normalise them differently
    assert not torch.allclose(D(fake.detach()), d_fake_in_d_step)


def test_real_and_fake_outputs_come_back_in_order():
    D = Discriminator(DiscriminatorConfig(width=0.25, norm="group")).eval()
    real, fake = torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)
    d_real, d_fake = judge(D, real, torch.cat([fake[:2]]))
    assert torch.allclose(d_real, D(real), atol=1e-6) and torch.allclose(d_fake, D(fake[:2]), atol=1e-6)


def _store(tmp_path, n=6, size=32):
    import numpy as np

    from endopat.data.frames import build_store
    from endopat.io import write_png

    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(tmp_path / "imgs" / f"f{i}.png", (rng.random((size, size, 3)) * 255).astype(np.uint8))
    return build_store(tmp_path / "imgs", tmp_path / "store", (size, size))


def test_auto_weights_bring_each_reconstruction_term_to_one_at_the_start(tmp_path):
    import numpy as np

    from endopat import colour, losses
    from endopat.config import LossWeights, ModelConfig
    from endopat.networks import Colorizer
    from endopat.tasks.recolor import ab_histogram, calibrate_weights

    torch.manual_seed(0)
    store = _store(tmp_path)
    G = Colorizer(ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32)))
    table = torch.from_numpy(ab_histogram(store, 10).weights(0.5)).float()
    w = calibrate_weights(G, store, table, LossWeights(), torch.device("cpu"))
    lab_n = colour.rgb_uint8_to_lab_n(torch.from_numpy(np.stack([store[i] for i in range(len(store))])))
    with torch.no_grad():
        fake = G(lab_n[:, :1])
    P = colour.pixel_weights(lab_n[:, 1:], table)
    assert w["gamma"] == 1.0
    assert abs(w["lam"] * float(losses.rebalanced_l2(fake, lab_n[:, 1:], P)) - 1) < 1e-4
    assert abs(w["phi"] * float(losses.l2(fake, lab_n[:, 1:])) - 1) < 1e-4


def test_fixed_weights_are_used_as_given(tmp_path):
    from endopat.config import LossWeights, ModelConfig
    from endopat.networks import Colorizer
    from endopat.tasks.recolor import calibrate_weights

    G = Colorizer(ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32)))
    w = calibrate_weights(G, _store(tmp_path), torch.ones(2, 256), LossWeights(gamma=0.5, lam=0.25, phi=2),
                          torch.device("cpu"))
    assert w == {"gamma": 0.5, "lam": 0.25, "phi": 2.0}



def test_a_resumed_pretraining_counts_a_damaged_a_b_histogram_again(tmp_path, monkeypatch):
    _store(tmp_path)

    def pretrain(steps: int) -> int:
        (tmp_path / "c.yaml").write_text(TINY_MODEL + f"steps: {steps}\nbatch_size: 2\n"
                                         "recolor: {discriminator: {width: 0.125}}\n")
        return run_cli(monkeypatch, "pretrain", "-u", tmp_path / "imgs", "-o", tmp_path / "run", "-c",
                       tmp_path / "c.yaml", "--no-progress")

    assert pretrain(2) == 0
    (tmp_path / "run" / "ab_histogram.json").write_bytes(b'{"counts": [[1, 2], "half a file')
    assert pretrain(3) == 0
    assert ABHistogram.load(tmp_path / "run" / "ab_histogram.json").total > 0
