"""CNN on 2D spectral cutouts: model, data, training, evaluation, scoring, attribution, cards.

Django-free. Entry points the platform calls:

- :func:`mlcore.cnn.training.train` -> :class:`~mlcore.cnn.training.TrainResult`
- :func:`mlcore.cnn.evaluation.evaluate` (+ ``crossmatch_external``)
- :func:`mlcore.cnn.scoring.score` / ``iter_scores`` (streaming, MC dropout, BALD)
- :func:`mlcore.cnn.attribution.attribute` + ``save_attribution_png``
- :func:`mlcore.cnn.card.write_model_dir` / ``load_checkpoint`` / ``read_card``
- :func:`mlcore.cnn.pretrain.pretrain` (self-supervised trunks; fine-tune with ``train(init=...)``)
"""
