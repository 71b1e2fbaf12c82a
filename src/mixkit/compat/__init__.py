"""Adapters to other libraries' conventions: ``mixkit.compat.timm`` (timm's ``Mixup`` and
``FastCollateMixup`` arguments and calls), ``mixkit.compat.lightning`` (a callback that mixes
each training batch) and ``mixkit.compat.hf`` (a ``transformers`` data collator that mixes each
batch; it needs torch alone). Each submodule imports only what it adapts to; importing
``mixkit`` never imports them."""
