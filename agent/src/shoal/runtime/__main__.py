"""`python -m shoal.runtime`: see ctl.py."""

import sys

from shoal.runtime.ctl import main

sys.exit(main())
