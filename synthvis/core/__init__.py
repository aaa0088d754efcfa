"""Types every layer shares: episodes, transition batches, the latent layout and its normalizer.

Nothing here imports another synthvis package, so envs, datamodules and lightning_modules can all build on it.
"""
