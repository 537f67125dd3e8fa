"""What a face image shows, read as numbers: head pose (`pose.py`)."""
