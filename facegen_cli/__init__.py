"""facegen: generate human faces with GANs (StyleGAN2 and the classic families)."""

__version__ = "0.1.0"
