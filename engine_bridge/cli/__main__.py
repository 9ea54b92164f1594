import sys

from engine_bridge.cli import main

sys.exit(main())
