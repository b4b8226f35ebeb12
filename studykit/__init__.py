"""studykit: when do surprising RL-for-LLM results hold? (arXiv 2508.21188, reproduced and extended)."""

__version__ = "0.1.0"
