"""jetimage: calorimeter jet images from collider events, and CNNs trained on them.

The package is layered; a module imports only from the layers below its own (an import-linter
contract in ``pyproject.toml`` enforces it; ``docs/architecture.md`` argues the layout).

Command line and workflow support
    :mod:`~jetimage.cli` (``jetimage <stage>``, also run as :mod:`~jetimage.__main__`),
    :mod:`~jetimage.resources` (the rules' ``mem_mb``).
Stages (:mod:`jetimage.stages`), one per Snakemake rule
    :mod:`~jetimage.stages.generate`, :mod:`~jetimage.stages.ingest`, :mod:`~jetimage.stages.images`,
    :mod:`~jetimage.stages.image_mass`, :mod:`~jetimage.stages.pileup`, :mod:`~jetimage.stages.train`,
    :mod:`~jetimage.stages.evaluate`, :mod:`~jetimage.stages.plots`, :mod:`~jetimage.stages.apply`,
    :mod:`~jetimage.stages.export`; :mod:`~jetimage.stages.correct` (a trained U-Net's corrected
    images and jet masses; no rule yet).
Evaluation (:mod:`jetimage.evaluation`)
    :mod:`~jetimage.evaluation.metrics` (ROC, rejection, bootstrap),
    :mod:`~jetimage.evaluation.likelihood`, :mod:`~jetimage.evaluation.fisher`,
    :mod:`~jetimage.evaluation.baselines`, :mod:`~jetimage.evaluation.scoring`,
    :mod:`~jetimage.evaluation.two_stage` (the CNN score and physics variables in a boosted tree),
    :mod:`~jetimage.evaluation.pileup` (pileup removal against the truth jets).
Training (:mod:`jetimage.training`)
    :mod:`~jetimage.training.data` (split, weights, streaming), :mod:`~jetimage.training.pixels`
    (the image task's per-pixel targets and loss), :mod:`~jetimage.training.definition`
    (the model's input definition), :mod:`~jetimage.training.loading`,
    :mod:`~jetimage.training.resume` (backups with the fingerprint of their inputs).
Decorrelation from the jet mass (:mod:`jetimage.decorrelation`)
    :mod:`~jetimage.decorrelation.sculpting`, :mod:`~jetimage.decorrelation.ddt`,
    :mod:`~jetimage.decorrelation.planing`, :mod:`~jetimage.decorrelation.disco`.
Images (:mod:`jetimage.images`) and models (:mod:`jetimage.models`)
    :mod:`~jetimage.images.channels`, :mod:`~jetimage.images.pixelize`,
    :mod:`~jetimage.images.constituents`, :mod:`~jetimage.images.lorentz`,
    :mod:`~jetimage.images.detector`, :mod:`~jetimage.images.normalize`,
    :mod:`~jetimage.images.preprocess`, :mod:`~jetimage.images._kernels` (the compiled kernel);
    :mod:`~jetimage.models.zoo` (the Keras architectures), :mod:`~jetimage.models.p4m` (p4m
    group-equivariant layers).
Physics (:mod:`jetimage.physics`)
    :mod:`~jetimage.physics.jets` (clustering, trimming, tau21, truth matching),
    :mod:`~jetimage.physics.events` (fat jets, event variables, the cut-based selection),
    :mod:`~jetimage.physics.pileup` (the minimum-bias overlay, CHS, SoftKiller, area subtraction).
Formats and configuration
    :mod:`~jetimage.formats.errors`, :mod:`~jetimage.formats.atomic`, :mod:`~jetimage.formats.root`,
    :mod:`~jetimage.formats.hdf5`, :mod:`~jetimage.formats.readers` (users' files by layout);
    :mod:`~jetimage.config.validation`, :mod:`~jetimage.config.reference`,
    :mod:`~jetimage.config.snapshots`; :mod:`~jetimage.stats`.
"""

__version__ = "0.1.0"
