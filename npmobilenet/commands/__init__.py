"""One module per ``npmobilenet`` sub-command: ``add_arguments(parser)`` and ``run(args)``."""
