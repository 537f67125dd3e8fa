"""`facegen studio`: a local web app over the engine (explore, mix, edit, morph, project, quiz)."""
