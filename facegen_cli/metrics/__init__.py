"""Image-quality metrics: FID, KID, precision and recall over the FID Inception network (see `fid.py`)."""
