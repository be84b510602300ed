"""Data files shipped with the package (the demo scenes' recipes); read with importlib.resources.

`DEMO_SCENES` names each bundled demo scene's recipe; it lives here, beside the files, so the CLI
can offer the names without importing the demo's builder.
"""

DEMO_SCENES: dict[str, str] = {"pot": "demo_scene.json", "part": "part_scene.json", "torus": "torus_scene.json", "checker": "checker_scene.json"}
DEFAULT_DEMO_SCENE = "pot"
