"""synthvis: zero-shot visual generalization from offline pixel data (augmentation + latent diffusion upsampling)."""

from synthvis.resolvers import register_resolvers

register_resolvers()
