"""``python -m definitions.tools.ljspeech_synth --out data/ljspeech_synth --hours 4``."""

import sys

from definitions.tools.ljspeech_synth.synth import main

sys.exit(main())
