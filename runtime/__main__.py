import sys

from nlic.runtime.cli import main

sys.exit(main())
