"""Batches on a Ray cluster: the same items, outputs, report and audio as ``run_batch``.

``driver``: a batch over a pool of long-lived worker actors (``CloneWorkers``,
``run_batch_ray``); ``worker``: what each actor does (models loaded once, voices embedded
once, audio returned encoded); ``references``: the driver's side of the files (references
shipped, shared-filesystem detection); ``dataset``: a callable class for ``ray.data``'s
``Dataset.map_batches``; ``connection``: Ray imported on demand (an optional dependency,
``sv2tts[ray]``) and connected. No module here imports Ray when it is imported.
"""
