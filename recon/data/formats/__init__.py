"""One module per dataset format. Each defines:

    NAME: str                     key in recon.data.FORMATS
    LOOKS_FOR: str                what detection looks for, quoted when a forced format does not match
    KEY_FILE: str                 the format's telltale file, listed in "unknown folder" errors
    detect(path) -> Path | None   the dataset root if `path` (a folder or its main file) is this format
    read(root, image_scale) -> Loaded   views in the design's camera convention (+ bbox if given)
                                  (image_scale: a factor, or an AutoScale resolved on the first image)
"""
