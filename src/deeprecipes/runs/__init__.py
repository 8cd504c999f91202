"""Runs of recipes: the parts a run is made of, its phases, its run directory, its report, and the public API.

- :mod:`.api`: ``run``, ``resume``, ``evaluate``, ``figures``, ``sample`` (what the CLI calls);
- :mod:`.parts`: the typed :class:`RunParts` and :func:`build_parts`;
- :mod:`.phases`: the phases a run is a list of (layer-wise pretraining, fit, and later ones);
- :mod:`.rundir`: ``model.json`` and :func:`load_run`, which rebuilds a trained model without data;
- :mod:`.device`: device, precision and threads; :mod:`.report`: final metrics, figures, ``summary.json``;
- :mod:`.launch`: ``--nproc N``, a shortcut that starts torchrun.
"""
