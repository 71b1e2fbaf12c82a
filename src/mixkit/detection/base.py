"""What the detection mixers share: the call (``sample`` then ``apply``, the same output) and a
repr built from their options. Each mixer's module holds its draws (``sample``, on the host) and
its ``apply``; the target conventions are in ``targets``."""

from __future__ import annotations

from . import targets as T

__all__ = ["DetectionMixer"]


class DetectionMixer:
    """Base of ``Mosaic``, ``MixUp``, ``CutMix`` and ``CopyPaste``: ``mixer(images, targets,
    generator=g)`` is ``mixer.apply(images, targets, mixer.sample(images, targets, generator=g))``;
    ``repr`` names the options listed in ``_options`` (the constructor's keywords)."""

    _options: tuple[str, ...] = ()

    def __call__(self, images, targets, *, generator=None):
        return self.apply(images, targets, self.sample(images, targets, generator=generator))

    def sample(self, images, targets, *, generator=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, images, targets, params):  # pragma: no cover - abstract
        raise NotImplementedError

    def _pairs(self, batch, stacked, partners, args):
        """``self._one(batch, i, partners[i], args[i], out)`` for every image i (``out``: row i of
        the preallocated output batch ``stacked``, or None for a list of images), and the outputs
        written back as the inputs came (``targets.write``)."""
        outs, objs = [], []
        for i, (j, arg) in enumerate(zip(partners, args, strict=True)):
            out, obj = self._one(batch, i, j, arg, None if stacked is None else stacked[i])
            outs.append(out)
            objs.append(obj)
        return T.write(batch, outs if stacked is None else stacked, objs)

    def __repr__(self) -> str:
        options = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._options)
        return f"{type(self).__name__}({options})"
