"""``python -m agent``: run the podtap sniffer agent."""

import sys

from agent.cli import main

sys.exit(main())
