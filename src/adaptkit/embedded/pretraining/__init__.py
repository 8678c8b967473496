"""How the embedded model and probes were made: one command, ``python -m adaptkit.embedded.pretraining.pretrain``.

Not needed at run time: the shipped weights (``adaptkit/embedded/tiny-sd``, ``probes/``) are this
code's output; its log and report live in ``docs/embedded/``.
"""
