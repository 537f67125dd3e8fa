"""What a face image shows, read as numbers: head pose (`pose.py`), age and CelebA's attributes
(`attributes.py`), all of them at once (`face.py`: `read_face`)."""
