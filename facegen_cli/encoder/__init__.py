"""An encoder that maps a face image to a network's W+ in one forward pass (e4e / pSp style)."""
