"""Runs timm's ``caformer_s18`` (timm's port of the MetaFormer authors' code) on given weights, in a
process of its own: ``python timm_caformer.py STATE.pt INPUT.pt OUT.pt {starrelu,relu}``.

STATE holds weights in the authors' release layout (``downsample_layers.*``, ``stages.i.j.*``,
``norm.*``); they go through timm's own key conversion (``checkpoint_filter_fn``) into timm's model,
loaded strictly. OUT gets the four stages' maps (``forward_intermediates``) for INPUT.

timm imports torchvision at import time for its data transforms and frozen batch norm, none of
which a CaFormer uses, and no torchvision runs beside this CPU torch; so ``torchvision`` is
answered here by empty placeholder modules, in this process only. timm itself is installed with
``--no-deps`` into ``.reference/`` (``make reference``), outside endopat's environment.
"""

import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder(type):
    """Any attribute or call of a placeholder class is another placeholder class."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})

    def __call__(cls, *args, **kwargs):
        return _Placeholder(cls.__name__, (), {})


class _PlaceholderModule(types.ModuleType):
    __path__: list = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _NoTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _PlaceholderModule(spec.name)

    def exec_module(self, module):
        pass


def main(state_path: str, input_path: str, out_path: str, act: str) -> None:
    sys.meta_path.insert(0, _NoTorchvision())
    import torch
    from timm.models import metaformer as mf

    mixers = [mf.SepConv] * 2 + [mf.Attention] * 2
    kwargs = {}
    if act == "relu":  # SurgeNet's CaFormer: ReLU in the separable convolutions and the MLPs
        class ReLUSepConv(mf.SepConv):  # a class (timm tests issubclass), not a partial
            def __init__(self, dim, **kw):
                super().__init__(dim, act1_layer=torch.nn.ReLU, **kw)

        mixers = [ReLUSepConv] * 2 + [mf.Attention] * 2
        kwargs["mlp_act"] = torch.nn.ReLU
    model = mf.MetaFormer(depths=(3, 3, 9, 3), dims=(64, 128, 320, 512), token_mixers=mixers,
                          norm_layers=[mf.LayerNorm2dNoBias] * 2 + [mf.LayerNormNoBias] * 2, num_classes=0,
                          **kwargs).eval()
    state = torch.load(state_path, weights_only=True)
    model.load_state_dict(mf.checkpoint_filter_fn(state, model), strict=True)
    with torch.no_grad():
        features = model.forward_intermediates(torch.load(input_path, weights_only=True), intermediates_only=True)
    torch.save([f.contiguous() for f in features], out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
