import sys

from jenbridge.cli import main

sys.exit(main())
