"""StyleGAN2 ops: each a plain-PyTorch reference, with room for a faster kernel behind it."""
