"""Explicit controls: set a face's age, expression, hair colour or head pose to a value, measured by the
estimators and moved along fitted directions only (store.py, steer.py, entanglement.py)."""
