"""wikipulse: Wikimedia's live edit stream through Kafka, Spark and PostgreSQL, for notebooks.

Layers, each importing only the ones below it (an import-linter contract enforces it):
sources -> producer -> stream -> sinks -> query -> dashboards; with config, errors, jvm,
db, spark and stack underneath everything.
"""

from wiki_lib.config import Settings, load_settings
from wiki_lib.errors import WikiError

__all__ = ["Settings", "WikiError", "__version__", "load_settings"]
__version__ = "0.1.0"
