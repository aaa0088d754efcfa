"""EDM diffusion math as pure functions (edm.py) and the samplers built on it (samplers.py)."""
