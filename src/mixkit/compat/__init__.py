"""Adapters to other libraries' conventions: ``mixkit.compat.timm`` (timm's ``Mixup`` and
``FastCollateMixup`` arguments and calls) and ``mixkit.compat.lightning`` (a callback that mixes
each training batch). Each submodule imports only what it adapts to; importing ``mixkit`` never
imports them."""
