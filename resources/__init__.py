"""Data files shipped with the package (the demo scene recipe); read with importlib.resources."""
