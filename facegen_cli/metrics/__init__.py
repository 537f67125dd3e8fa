"""Image-quality metrics: FID and KID over the FID Inception network (see `fid.py`)."""
