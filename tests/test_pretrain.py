import torch

from endopat.config import DiscriminatorConfig
from endopat.networks import Discriminator
from endopat.pretrain import judge


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
