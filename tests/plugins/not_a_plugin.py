"""On the plugins' path but never named as a plugin: a run may neither build nor import anything of it.

Importing it leaves a mark (the file ``$NOT_A_PLUGIN_MARK`` names), so a test can tell it never was.
"""

import os
from pathlib import Path

if "NOT_A_PLUGIN_MARK" in os.environ:
    Path(os.environ["NOT_A_PLUGIN_MARK"]).write_text("imported", encoding="utf-8")


class Split:
    """What a config could name as a split."""
