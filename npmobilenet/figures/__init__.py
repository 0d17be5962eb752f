"""The figures in the repository's ``figures/`` folder, each drawn from the library's own numbers.

Regenerate them all with ``python -m npmobilenet.figures`` (``--help`` for options).  Every figure
is a module with a ``plot(fig=None, **options) -> matplotlib.figure.Figure`` function; nothing is
typed in by hand except the papers' published accuracies, which are cited where they are written
(``published.py``).

The lessons call the same functions, so a lesson's plot and the committed PNG are one figure.
"""
import importlib

# file stem -> (module, one-line description).  Ordered as the lessons use them.
FIGURES = {
    "activations": ("activations", "activation functions and their derivatives (lesson 4)"),
    "stages": ("stages", "parameters and MAdds per stage of every MobileNet variant (lessons 6, 7)"),
    "accuracy_vs_madds": ("published", "the papers' ImageNet top-1 against the library's exact MAdds"),
    "architectures": ("diagrams", "each architecture drawn as a block diagram from its table"),
    "training_curves": ("training", "a short training run on the bundled digits (lesson 9)"),
    "roofline": ("roofline", "measured per-layer speed against arithmetic intensity (lesson 10)"),
}


def load(name):
    """The module that draws figure ``name`` (a key of ``FIGURES``)."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    return importlib.import_module(f".{FIGURES[name][0]}", __name__)


def generate(out_dir="figures", names=None, quick=False, dpi=110):
    """Draw figures and save them as ``out_dir/<name>.png``; returns the paths written.

    ``quick`` draws cheaper versions (fewer models, shorter runs) for tests.
    """
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name in names or list(FIGURES):
        mod = load(name)
        fig = mod.plot(quick=quick) if "quick" in mod.plot.__code__.co_varnames else mod.plot()
        path = os.path.join(out_dir, f"{name}.png")
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
