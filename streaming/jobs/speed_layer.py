"""spark-submit entry point of the speed layer.

    spark-submit --master spark://host:7077 streaming/jobs/speed_layer.py --trigger "1 second"

Arguments are those of ``wikipulse stream``; settings come from WIKI__... variables.
"""

import sys

from wiki_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", "run", *sys.argv[1:]]))
