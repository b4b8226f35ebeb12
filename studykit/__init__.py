"""studykit: when do surprising RL-for-LLM results hold? (arXiv 2508.21188, reproduced and extended)."""

__version__ = "0.1.0"

import logging as _logging

# bitsandbytes' CPU backend logs an error-looking line on import when the optional `kernels` package is missing;
# its fallback kernels are what studykit uses on CPU, so the line is noise in every notebook cell.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.CRITICAL)
